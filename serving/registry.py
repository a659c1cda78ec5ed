"""The registry: the alias, the tags and their readers, moving the alias, loading a version.

Training writes these tags on every registered version and moves the alias; the service, the CLI
and the sensor read them. Keeping both sides' names here means a renamed tag cannot leave a reader
behind, and the serving side, which a bento carries alone, owns what it depends on. It is the one
module of ``serving`` that talks to MLflow, always through a client or URI it is given: nothing here
sets MLflow's process-wide tracking URI.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import EllipsisType
from typing import Any, Literal, NamedTuple

import mlflow
import pandas as pd
import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import Model
from sklearn.base import BaseEstimator

from serving.model.artifact import load_estimator
from serving.store import moves
from serving.store.moves import Move, recording
from serving.store.predictions import PredictionStore

logger = logging.getLogger(__name__)

RegistryClient = MlflowClient
"""The client every reader of the registry is given, bound to one tracking and registry URI."""


def connect(uri: str) -> RegistryClient:
    """A client for the tracking store and registry at ``uri`` (the same URI serves both)."""
    return MlflowClient(uri, uri)


CHAMPION = "champion"
"""The alias of the version that serves; moved only by the gate, a promotion or a rollback."""
CHALLENGER = "challenger"
"""The alias of the version scored in shadow on live traffic (``serving.shadow``); never answers."""

GateOutcome = Literal["passed", "held", "pending"]


class Tag:
    """Tag names on registered versions (and on the MLflow runs behind them)."""

    CANDIDATE = "mlserve.candidate"
    MIX = "mlserve.mix"
    """The data mix (base, union, weighted, recent, feedback_only) the model was fitted on."""
    FINAL = "mlserve.final"
    """On the run that logged the model a version is registered from."""
    METRIC = "mlserve.metric"
    SCORE = "mlserve.score"
    DATA_VERSION = "mlserve.data_version"
    FEEDBACK_ROWS = "mlserve.feedback_rows"
    FEEDBACK_TRAIN_ROWS = "mlserve.feedback_train_rows"
    FEEDBACK_TEST_ROWS = "mlserve.feedback_test_rows"
    FEEDBACK_WATERMARK = "mlserve.feedback_watermark"
    """The latest feedback time (``received_at``) the version's training data included."""
    GATE = "mlserve.gate"
    """``passed`` or ``held``; absent while the gate has not decided."""
    GATE_REASON = "mlserve.gate_reason"
    GATE_EVIDENCE = "mlserve.gate_evidence"
    """JSON: both models' scores per holdout, rows, weights, the improvement interval."""
    CHAMPION_LIVE = "mlserve.champion_live"
    """The serving champion's live metric on its labels when the gate decided (back-off)."""
    COLUMN_RULES = "mlserve.column_rules"
    """JSON: the spec's column rules the version was trained under, which the service logs
    each answered record's violations of (``serving.model.rules``)."""
    BAKE = "mlserve.bake"
    """JSON: the baking sensor's latest look at the version after it became champion
    (``mlserve_assets.ml.bake``): kept or rolled back, and the figures."""
    DRIFT = "mlserve.drift"
    """On the registered model: the latest drift check's ``DriftReport``, as JSON."""
    ONNX = "mlserve.onnx"
    """JSON: whether the version's ONNX twin may serve, and why (``mlserve_assets.ml.twin``)."""
    FINGERPRINT = "mlserve.fingerprint"
    """Data, spec, code and choice a version was trained from: an unchanged rerun reuses it."""
    DAGSTER_RUN = "dagster.run_id"
    DAGSTER_ASSET = "dagster.asset_key"


def champion(client: MlflowClient, model_name: str, alias: str = CHAMPION) -> ModelVersion | None:
    """The version ``alias`` (``champion`` unless told) points at, or None while none.

    Read from the registered model's aliases, so a model that does not exist yet and one without
    the alias are both a plain None, with no error text to interpret.
    """
    found = client.search_registered_models(filter_string=f"name = '{model_name}'")
    version = found[0].aliases.get(alias) if found else None
    return None if version is None else client.get_model_version(model_name, str(version))


class ChampionState(NamedTuple):
    """The version the alias names, and the one mlserve vetted: the newest recorded move's."""

    alias: str | None
    vetted: str | None

    @property
    def moved_around(self) -> bool:
        """Whether the alias names a version no recorded move went to."""
        return self.alias is not None and self.alias != self.vetted


def champion_state(
    client: MlflowClient,
    store: PredictionStore,
    model_name: str,
    *,
    trust_registry: bool,
    alias: str = CHAMPION,
) -> ChampionState:
    """Where ``alias`` points, and the version that holds it for mlserve.

    A move made around mlserve is not the champion (or challenger) for the gate, the sensor, the
    CLI or the service (``serving.following``), unless the deployment trusts the registry
    (``MLSERVE_TRUST_REGISTRY``): then the alias is the champion.
    """
    current = champion(client, model_name, alias)
    named = None if current is None else str(current.version)
    return ChampionState(named, named if trust_registry else moves.latest(store, model_name, alias))


def served_champion(
    client: MlflowClient, store: PredictionStore, model_name: str, *, trust_registry: bool
) -> ModelVersion | None:
    """The vetted champion's registered version (``champion_state``), or None before any."""
    vetted = champion_state(client, store, model_name, trust_registry=trust_registry).vetted
    return None if vetted is None else client.get_model_version(model_name, vetted)


def feedback_watermark(version: ModelVersion | None) -> float:
    """The latest label a version was trained on (0 when it saw none)."""
    return 0.0 if version is None else float(version.tags.get(Tag.FEEDBACK_WATERMARK, 0))


def gate_outcome(version: ModelVersion) -> GateOutcome:
    """What the gate decided about a version."""
    outcome = version.tags.get(Tag.GATE)
    return outcome if outcome in ("passed", "held") else "pending"


class GateSummary(NamedTuple):
    """How many versions passed, were held or await the gate; how many newest in a row it held."""

    counts: dict[GateOutcome, int]
    held_streak: int


def gate_summary(client: MlflowClient, model_name: str) -> GateSummary:
    """Count the registered versions by gate outcome, and the newest ones held in a row."""
    versions = client.search_model_versions(f"name='{model_name}'")
    outcomes = [gate_outcome(v) for v in sorted(versions, key=lambda v: -int(v.version))]
    counts: dict[GateOutcome, int] = {o: outcomes.count(o) for o in ("passed", "held", "pending")}
    return GateSummary(counts, held_streak(outcomes))


def held_streak(outcomes: list[GateOutcome]) -> int:
    """How many of the newest decided outcomes (given newest first) in a row are ``held``."""
    decided = [o for o in outcomes if o != "pending"]
    return next((i for i, o in enumerate(decided) if o != "held"), len(decided))


class DriftReport(NamedTuple):
    """The latest drift check on a model's served traffic (``Tag.DRIFT``)."""

    checked_at: float
    served_records: int
    drifted: list[str]  # the features that moved, most first
    metric: str
    estimate: float | None  # of ``metric``, label-free, on the same traffic (classifiers)


def record_drift(client: MlflowClient, model_name: str, report: DriftReport) -> None:
    """Keep the latest drift check's verdict on the registered model, for the service to export."""
    client.set_registered_model_tag(model_name, Tag.DRIFT, json.dumps(report._asdict()))


def drift_report(client: MlflowClient, model_name: str) -> DriftReport | None:
    """The latest drift check's verdict, or None if none was recorded (or it does not parse)."""
    text = client.get_registered_model(model_name).tags.get(Tag.DRIFT)
    try:
        return None if text is None else DriftReport(**json.loads(text))
    except (TypeError, ValueError):
        logger.warning("ignoring the unreadable %s tag of %s: %r", Tag.DRIFT, model_name, text)
        return None


def latest_version(client: MlflowClient, model_name: str) -> ModelVersion | None:
    """The most recently registered version (whatever the gate made of it), or None."""
    versions = client.search_model_versions(f"name='{model_name}'")
    return max(versions, key=lambda v: int(v.version), default=None)


def move_alias(
    client: MlflowClient,
    store: PredictionStore,
    model_name: str,
    version: str | None,
    *,
    by: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
    alias: str = CHAMPION,
    replacing: str | EllipsisType | None = ...,
) -> Move:
    """Point ``alias`` (``champion`` unless told) at ``version`` and record the move.

    The one way mlserve moves an alias. ``version`` None removes it (stops a shadow). A record
    that cannot be committed puts the alias back, so the history never misses a move. A mover
    that decided against a version passes it as ``replacing``: if another move came first,
    ``moves.StaleMove`` is raised and nothing moves (``moves.recording``).
    """
    current = champion(client, model_name, alias)
    move = Move(
        model_name=model_name,
        from_version=None if current is None else str(current.version),
        to_version="" if version is None else str(version),
        moved_at=time.time(),
        moved_by=by,
        reason=reason,
        evidence=evidence or {},
    )
    try:
        with recording(store, move, alias, replacing):
            _point(client, model_name, alias, move.to_version)
    except sa.exc.SQLAlchemyError:
        logger.error("recording the move failed: putting %s back", alias)
        _point(client, model_name, alias, move.from_version)
        raise
    return move


def _point(client: MlflowClient, model_name: str, alias: str, version: str | None) -> None:
    if version:
        client.set_registered_model_alias(model_name, alias, version)
    elif champion(client, model_name, alias) is not None:
        client.delete_registered_model_alias(model_name, alias)


class ModelFiles(NamedTuple):
    """What a logged model's folder holds: the estimator, its input signature and example."""

    estimator: BaseEstimator
    inputs: list[tuple[str, str, bool]]
    """(name, MLflow type, required) of each input column, in signature order."""
    example: pd.DataFrame | None


def read_model(model_dir: Path, trusted: frozenset[str]) -> ModelFiles:
    """The estimator, signature and input example of a local MLflow model folder.

    The estimator is read by ``serving.model.artifact``, never by MLflow's loader, which would
    take the format and the trusted types from the files themselves.
    """
    model = Model.load(str(model_dir))
    if model.signature is None:
        raise ValueError(f"model at {model_dir} has no signature: mlserve logs one for every model")
    inputs = [(c.name, c.type.name, c.required) for c in model.signature.inputs.inputs]
    example = model.load_input_example(str(model_dir))
    return ModelFiles(load_estimator(model_dir, trusted), inputs, example)


def version_metadata(client: MlflowClient, name: str, version: str) -> dict[str, Any]:
    """A registered version's name, run, metric, column rules and twin verdict, from its tags."""
    mv = client.get_model_version(name, version)
    return {
        "name": name,
        "version": str(mv.version),
        "run_id": mv.run_id or "",
        "metric": mv.tags.get(Tag.METRIC),
        "score": mv.tags.get(Tag.SCORE),
        "column_rules": mv.tags.get(Tag.COLUMN_RULES),
        "onnx": mv.tags.get(Tag.ONNX),
    }


def download_version(client: MlflowClient, name: str, version: str, dst: Path) -> Path:
    """A registered version's model folder, downloaded from the registry ``client`` reads.

    The version's storage location is asked of the client: MLflow resolves a ``models:/`` URI
    through its process-wide registry URI whatever registry URI it is given (3.17's
    ``ModelsArtifactRepository``), which would read another store, or none.
    """
    uri = client.tracking_uri
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri(name, version),
        dst_path=str(dst),
        tracking_uri=uri,
        registry_uri=uri,
    )
    return Path(local)
