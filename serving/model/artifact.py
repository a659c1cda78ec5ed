"""Reading a version's estimator without trusting its files: skops only, against mlserve's list.

``mlflow.sklearn.load_model`` takes the serialization format and the trusted types from the
version's own ``MLmodel`` file, that is from whoever wrote the artifact, and MLflow 3.17 unpickles
by default: a registry writer could make the service run code of their choosing. Here the format
must be skops and every type the file asks for must be on a list mlserve owns: the types its
preparation and the scikit-learn families produce (measured per family by
``tests/unit/test_artifact.py``), plus the ones a deployment declares. The list is checked before
anything is constructed, so a refused file runs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from sklearn.base import BaseEstimator

TRUSTED_TYPES = frozenset(
    {
        # Beyond skops' own defaults (scikit-learn estimators, NumPy arrays and builtins), what
        # mlserve's preparation and the common scikit-learn families need once fitted.
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    }
)


class RefusedModel(ValueError):
    """A version mlserve will not serve, and why (the message names the reason)."""


def trusted_types(extra: Iterable[str] = ()) -> frozenset[str]:
    """Mlserve's list plus the types a deployment declares (``MLSERVE_TRUSTED_TYPES``)."""
    return TRUSTED_TYPES | {t.strip() for t in extra if t.strip()}


def untrusted(types: Iterable[str], trusted: frozenset[str]) -> list[str]:
    """The types in ``types`` that are on neither skops' defaults nor ``trusted``."""
    return sorted(set(types) - trusted)


def needed_types(estimator: BaseEstimator, trusted: frozenset[str]) -> list[str]:
    """The types skops must trust to load ``estimator``, all of them on ``trusted``.

    Training asks this before it logs a model: a fitted estimator needing a type the service
    would refuse is refused there, naming the spec field that admits it, rather than registered
    and never served.
    """
    import skops.io  # here, not at the top: see load_estimator

    needed = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    refused = untrusted(needed, trusted)
    if refused:
        raise ValueError(
            f"{type(estimator).__name__} needs types mlserve does not trust by default: "
            f"{', '.join(refused)}; list them in the spec's trusted_types if you trust them"
        )
    return needed


def load_estimator(model_dir: Path, trusted: frozenset[str]) -> BaseEstimator:
    """The estimator in a local MLflow model folder, or ``RefusedModel`` saying why not."""
    try:
        flavors = yaml.safe_load((model_dir / "MLmodel").read_text()).get("flavors") or {}
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise RefusedModel(f"its MLmodel file cannot be read: {exc}") from exc
    flavor = flavors.get("sklearn")
    if not isinstance(flavor, dict):
        raise RefusedModel("it is not a scikit-learn model (no sklearn flavor in MLmodel)")
    stored_as = flavor.get("serialization_format")
    if stored_as != "skops":
        raise RefusedModel(f"it is stored as {stored_as!r}: mlserve loads skops only, never pickle")
    file = (model_dir / str(flavor.get("pickled_model", ""))).resolve()
    if not file.is_relative_to(model_dir.resolve()) or not file.is_file():
        raise RefusedModel("its model file is missing or outside the model's folder")
    # Imported where a model is read or written, not where this module is: every Dagster daemon,
    # code server, `dg` and `mlserve` process imports this module and most never read a model
    # (skops costs them 1.1 s each, measured).
    import skops.io

    try:
        asked = skops.io.get_untrusted_types(file=file)
    except Exception as exc:  # skops reads a zip and a JSON schema: any failure is a bad file
        raise RefusedModel(f"its skops file cannot be read: {exc}") from exc
    refused = untrusted(asked, trusted)
    if refused:
        raise RefusedModel(
            f"it asks to load types mlserve does not trust: {', '.join(refused)} "
            "(a deployment that needs them lists them in MLSERVE_TRUSTED_TYPES)"
        )
    estimator = skops.io.load(file, trusted=list(asked))
    if not isinstance(estimator, BaseEstimator):
        raise RefusedModel(f"it holds a {type(estimator).__name__}, not a scikit-learn estimator")
    return estimator
