"""What watches a model once it serves: baking after a promotion, the shadow challenger, drift.

Each is a block of the spec (``bake:``, ``shadow:``, ``drift:``) with defaults that work on a
user's data; docs/spec.md says what each field does.
"""

from __future__ import annotations

from pydantic import Field

from mlserve_assets.spec.strict import Strict

# Below this many labels a live metric is noise: rules never act on it.
MIN_LIVE_LABELS = 30


class Bake(Strict):
    """After every promotion, the new champion is watched on live traffic, and rolled back if worse.

    For ``hours`` after the alias moves (and at most the first ``requests`` answers), the requests
    the new champion answered are replayed with the version it replaced, so both are judged on the
    same requests. As labels arrive (late ones too, for ``late_label_hours`` after the window) the
    gate's paired bootstrap says whether the new champion is worse; past ``max_drop`` with the
    stated ``confidence`` it is rolled back, the move recorded with the evidence. The chance that a
    version as good as the one it replaced is rolled back anywhere in the watch stays below
    ``1 - confidence``: it is judged only at ``min_labels``, twice that, four times..., and each
    look spends its share (Bonferroni).
    """

    rollback: bool = True
    hours: float = Field(default=24, gt=0)
    requests: int = Field(default=2000, ge=MIN_LIVE_LABELS)
    min_labels: int = Field(default=MIN_LIVE_LABELS, ge=MIN_LIVE_LABELS)
    max_drop: float = Field(default=0.0, ge=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    late_label_hours: float = Field(default=24, ge=0)
    check_every_seconds: int = Field(default=30, ge=1)
    alerts: list[str] = Field(
        default_factory=lambda: ["PredictionErrorRateHigh", "PredictionLatencyHigh"]
    )
    """Alerts that roll the new champion back when they start firing, for it or for the whole
    service, during its watch (asked of Alertmanager, ``MLSERVE_ALERTMANAGER_URL``)."""


class Shadow(Strict):
    """The challenger: scored in shadow on live requests, and promoted on that evidence.

    ``mlserve promote --shadow`` names one; with ``held``, so does the gate, of a version it held
    for lack of evidence (better on its holdouts, not surely). Once labels arrive it meets what
    answered on the same requests, at ``min_labels`` labelled requests, twice that... up to
    ``max_labels``, each look spending its share of ``1 - confidence``; with ``promote`` it
    becomes the champion when even the pessimistic end of its improvement clears
    ``gate.min_improvement`` and it meets ``gate.threshold``: the gate's rule, on live traffic.
    As at the gate, no untrusted API key may carry more than ``gate.source_share`` of the labels.
    """

    promote: bool = True
    held: bool = True
    min_labels: int = Field(default=MIN_LIVE_LABELS, ge=MIN_LIVE_LABELS)
    max_labels: int = Field(default=2000, ge=MIN_LIVE_LABELS)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    check_every_seconds: int = Field(default=30, ge=1)


class Drift(Strict):
    """Which features of the served traffic moved away from the training data (``ml.drift``).

    The latest ``window`` served records are compared with the base rows once ``min_rows`` are
    logged, by the ``no_feature_drift`` check on ``predictions`` in the ``watch_<model>`` job,
    which its sensor requests after every ``every_predictions`` new predictions: drift shows
    before labels do.
    """

    window: int = Field(default=1000, ge=50)
    min_rows: int = Field(default=200, ge=50)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    min_psi: float = Field(default=0.2, gt=0)
    every_predictions: int = Field(default=500, ge=1)
