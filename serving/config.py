"""The service's settings, all from environment variables (the same names the stack sets).

Read once, when the service starts (``ServingConfig.from_env()`` in ``ModelService.__init__``), not
when the module is imported: a test or a tool can import the service without a configured
environment, and everything per request reads the running service's copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from serving.http.auth import ApiKeys
from serving.locations import Locations
from serving.model.artifact import trusted_types
from serving.store.ids import MAX_RECORDS


def _bento_model() -> str | None:
    """The model a bento was built with, read from the bento's own manifest.

    ``bentoml serve TAG`` runs the copy of this package inside the bento (``<bento>/src``) but does
    not apply the bentofile's ``envs`` (only containers do), so the manifest is the source of truth.
    """
    manifest = Path(__file__).resolve().parents[2] / "bento.yaml"
    if not manifest.exists():
        return None
    models = yaml.safe_load(manifest.read_text()).get("models") or []
    return models[0]["tag"] if models else None


def request_timeout() -> float:
    """MLSERVE_REQUEST_TIMEOUT, read on its own.

    The service's decorator sizes BentoML's backstop timeout from it at import, before (and
    wherever) the rest of the configuration is read.
    """
    return float(os.environ.get("MLSERVE_REQUEST_TIMEOUT", "30"))


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def trust_registry() -> bool:
    """MLSERVE_TRUST_REGISTRY: take the champion alias as it stands, recorded move or not.

    Off by default: only a move mlserve recorded serves (``serving.following``). Read by the
    service, the gate and the CLI alike, so they agree on what the champion is.
    """
    return _flag("MLSERVE_TRUST_REGISTRY", False)


@dataclass(frozen=True)
class ServingConfig:
    """Which model to serve, where to log, and the request limits."""

    model_name: str
    bento_model: str | None
    tracking_uri: str
    predictions_url: str
    spool_path: Path
    poll_seconds: float
    log_predictions: bool
    max_records: int
    max_body_bytes: int
    request_timeout: float
    keys: ApiKeys
    feedback_per_minute: int
    """Labels a minute one key may send (MLSERVE_FEEDBACK_PER_MINUTE; 0: no limit)."""
    trusted_types: frozenset[str]
    """Types a model file may ask skops for: mlserve's list and MLSERVE_TRUSTED_TYPES."""
    trust_registry: bool
    """Serve whatever the champion alias names, recorded move or not (MLSERVE_TRUST_REGISTRY)."""
    shadow_fraction: float
    """The share of requests the challenger scores in shadow (MLSERVE_SHADOW_FRACTION; 0: none)."""
    runtime: str = "auto"
    """``auto``: a version's verified ONNX twin answers; ``sklearn``: never (MLSERVE_RUNTIME)."""
    onnx_threads: int = 1
    """onnxruntime's threads per call (MLSERVE_ONNX_THREADS, default 1).

    One: a request's rows take onnxruntime well under a millisecond, and a pool's threads spin
    on the cores the worker, the log writer and other replicas need. Measured on two cores (the
    families bench, two rounds each): a 200-tree forest's 100-record throughput 1.04x the
    logistic champion's with one thread against 0.80x with two, its p99 at 200 req/s 13.2 against
    17.1 ms; gradient boosting 1.17x against 0.83x.
    """

    @classmethod
    def from_env(cls) -> ServingConfig:
        """Read MLSERVE_MODEL, MLSERVE_BENTO_MODEL, the limits, the API keys and the locations."""
        locations = Locations.from_env()
        keys_file = os.environ.get("MLSERVE_API_KEYS_FILE")
        return cls(
            model_name=os.environ.get("MLSERVE_MODEL", ""),
            bento_model=os.environ.get("MLSERVE_BENTO_MODEL") or _bento_model(),
            tracking_uri=locations.mlflow_tracking_uri,
            predictions_url=locations.predictions_url,
            spool_path=Path(os.environ.get("MLSERVE_SPOOL", locations.home / "spool.db")),
            poll_seconds=float(os.environ.get("MLSERVE_POLL_SECONDS", "5")),
            log_predictions=_flag("MLSERVE_LOG_PREDICTIONS", True),
            max_records=_max_records(),
            max_body_bytes=int(os.environ.get("MLSERVE_MAX_BODY_BYTES", str(1 << 20))),
            request_timeout=request_timeout(),
            keys=ApiKeys.read(
                os.environ.get("MLSERVE_API_KEYS", ""),
                Path(keys_file) if keys_file else None,
                os.environ.get("MLSERVE_OPEN_SCOPES", "predict"),
            ),
            feedback_per_minute=int(os.environ.get("MLSERVE_FEEDBACK_PER_MINUTE", "1200")),
            trusted_types=trusted_types(os.environ.get("MLSERVE_TRUSTED_TYPES", "").split(",")),
            trust_registry=trust_registry(),
            shadow_fraction=_fraction("MLSERVE_SHADOW_FRACTION", 1.0),
            runtime=_runtime(),
            onnx_threads=int(os.environ.get("MLSERVE_ONNX_THREADS") or 1),
        )


def _max_records() -> int:
    value = int(os.environ.get("MLSERVE_MAX_RECORDS", "1000"))
    if not 1 <= value <= MAX_RECORDS:  # a request's ids number its records in four hex digits
        raise ValueError(f"MLSERVE_MAX_RECORDS must be 1 to {MAX_RECORDS}, got {value}")
    return value


def _runtime() -> str:
    value = os.environ.get("MLSERVE_RUNTIME", "auto")
    if value not in ("auto", "sklearn"):
        raise ValueError(f"MLSERVE_RUNTIME must be auto or sklearn, got {value!r}")
    return value


def _fraction(name: str, default: float) -> float:
    value = float(os.environ.get(name, default))
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
    return value
