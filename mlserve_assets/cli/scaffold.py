"""``mlserve init``: a first spec for a CSV, guessed from its columns, to edit rather than write.

Each guess is one a user can check at a glance and is written as a comment in the file: the target
(``--target``, else a column named like one, else the last), the task (text, booleans or a few
distinct integers make a classification), each column's type and whether it has gaps, two
candidates of different families, and a gate that must beat the trivial model (the majority class,
or predicting the mean). No value ranges are guessed: tomorrow's rows may rightly exceed today's.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

if TYPE_CHECKING:  # pandas is imported where used: `mlserve --help` should stay quick
    import pandas as pd

_TARGET_NAMES = ("target", "label", "y", "class", "outcome")
_MAX_CLASSES = 20

_CANDIDATES = {
    "classification": [
        {
            "name": "logreg",
            "steps": [
                {"estimator": "sklearn.preprocessing.StandardScaler"},
                {
                    "estimator": "sklearn.linear_model.LogisticRegression",
                    "params": {"max_iter": 1000},
                },
            ],
        },
        {
            "name": "random_forest",
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 200, "min_samples_leaf": 2, "random_state": 0},
        },
    ],
    "regression": [
        {
            "name": "ridge",
            "steps": [
                {"estimator": "sklearn.preprocessing.StandardScaler"},
                {"estimator": "sklearn.linear_model.Ridge"},
            ],
        },
        {
            "name": "random_forest",
            "estimator": "sklearn.ensemble.RandomForestRegressor",
            "params": {"n_estimators": 200, "min_samples_leaf": 2, "random_state": 0},
        },
    ],
}


# Classes are imbalanced when the most frequent is this many times as common as in a uniform mix
# (binary: above 60%).
IMBALANCED = 1.2


def guess_target(frame: pd.DataFrame) -> str:
    """A column named like a target, else the last column."""
    by_name = {c.lower(): c for c in frame.columns}
    return next((by_name[n] for n in _TARGET_NAMES if n in by_name), frame.columns[-1])


def guess_task(target: pd.Series) -> str:
    """Classification for text, booleans or a few distinct integers; else regression."""
    from pandas.api import types as ptypes

    values = target.dropna()
    if ptypes.is_bool_dtype(values) or not ptypes.is_numeric_dtype(values):
        return "classification"
    few = values.nunique() <= min(_MAX_CLASSES, max(2, len(values) // 20))
    return "classification" if ptypes.is_integer_dtype(values) and few else "regression"


# The data checks' dtype for each MLflow input type the training will log.
_RULE_DTYPES = {"long": "integer", "double": "numeric", "string": "string", "boolean": "bool"}


def _rules(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each column's type and gaps, read as the training reads them (``input_schema``).

    A true/false column with gaps is read as text, which the ``bool`` rule would refuse: it gets
    no dtype rule.
    """
    from mlserve_assets.ml.prepare import input_schema

    rules = {}
    for name, kind, required in input_schema(frame):
        typed = kind != "boolean" or required
        rules[name] = {"dtype": _RULE_DTYPES[kind]} if typed else {}
        rules[name]["nullable"] = not required
    return rules


def scaffold_spec(frame: pd.DataFrame, name: str, path: str, target: str | None) -> dict[str, Any]:
    """The spec, as data, for the CSV at ``path`` (as the spec file will reference it)."""
    from mlserve_assets.ml.time_order import is_time_column

    target = target or guess_target(frame)
    if target not in frame.columns:
        raise click.BadParameter(f"no column {target!r}; columns: {list(frame.columns)}")
    task = guess_task(frame[target])
    y = frame[target].dropna()
    if task == "classification":
        shares = y.value_counts(normalize=True)
        majority, uniform = float(shares.iloc[0]), 1 / len(shares)
        if majority > IMBALANCED * uniform:
            # Accuracy rewards answering the majority: balanced accuracy gives that 1/k.
            metric, threshold = "balanced_accuracy", round(uniform + 0.01, 3)
            why = (
                f"the classes are imbalanced (the most frequent is {majority:.0%}): beat always "
                f"answering one class (balanced accuracy {uniform:.3f}) by a point"
            )
        else:
            metric, threshold = "accuracy", round(min(majority + 0.01, 0.99), 3)
            why = f"beat always answering the most frequent class ({majority:.3f}) by a point"
    else:
        # R2 is 0 for answering the mean of the rows judged, whichever rows those are; an rmse
        # bar taken from these rows' spread is out of reach wherever the target spreads wider
        # (a bar from winter's temperatures held every summer model of the seasons' loop).
        metric, threshold = "r2", 0.01
        why = "beat always answering the mean of the rows judged (r2 0) by 1% of its error"
    columns = _rules(frame)
    if task == "classification" and y.nunique() <= _MAX_CLASSES:
        columns[target]["allowed"] = sorted(y.unique().tolist(), key=str)
    times = [c for c in frame.columns if c != target and is_time_column(frame[c])]
    split = {"split": {"by": times[0]}} if times else {}
    if times:
        why += f"; split by {times[0]} (dates): the newest rows judge, the oldest train"
    return {
        "models": [
            {
                "name": name,
                "description": f"{task.capitalize()} of {target} from {Path(path).name}.",
                "source": {"kind": "file", "path": path},
                "target": target,
                "task": task,
                "candidates": _CANDIDATES[task],
                "metric": metric,
                "gate": {"threshold": threshold, "min_improvement": 0.0},
                **split,
                "columns": columns,
            }
        ],
        "_why": why,
    }


@click.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--target", help="The column to predict [default: guessed].")
@click.option("--name", help="The model's name [default: the file's name].")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the spec here (the data path is made relative to it) [default: stdout].",
)
def init(data: Path, target: str | None, name: str | None, output: Path | None) -> None:
    """Scaffold a spec for DATA (a CSV): target, task, column types, two candidates, a gate."""
    import pandas as pd

    frame = pd.read_csv(data)
    name = name or re.sub(r"\W+", "_", data.stem).strip("_").lower()
    where = data.resolve()
    if output is not None:
        where = Path(_relative(where, output.resolve().parent))
    spec = scaffold_spec(frame, name, str(where), target)
    model, why = spec["models"][0], spec.pop("_why")
    header = (
        f"# Scaffolded by `mlserve init {data}`: check each guess, then `mlserve validate`.\n"
        f"# target {model['target']!r} -> task {model['task']}; the gate's threshold is to {why}.\n"
    )
    text = header + yaml.safe_dump(spec, sort_keys=False, width=100)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}: {model['name']}, {model['task']} of {model['target']}")


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)
