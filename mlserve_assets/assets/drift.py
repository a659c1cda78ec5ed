"""The drift check on ``predictions``: served traffic against the rows the model was trained on.

A warning, not a block: drift says the world moved, not that the model got worse; the label-free
estimate beside it says how much worse it might be before labels arrive, and the live metric,
where labels exist, says how it did. Run by the ``watch_<model>`` job (its sensor requests it as
predictions accumulate, or from the UI), not by training, which needs no verdict on traffic. The
verdict is also kept on the registered model (``Tag.DRIFT``): the service exports it to Prometheus
and ``mlserve status`` shows it.
"""

import time

import dagster as dg
import pandas as pd

from mlserve_assets.assets.keys import ModelAssets
from mlserve_assets.ml.drift import feature_drift
from mlserve_assets.ml.estimate import estimated_score
from mlserve_assets.ml.validation import feature_columns
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from serving.registry import DriftReport, record_drift
from serving.store.window import recent

CHECK = "no_feature_drift"


def drift_checks(m: ModelAssets) -> list[dg.AssetChecksDefinition]:
    """``no_feature_drift`` on one model's ``predictions``."""
    spec, rules, metric = m.spec, m.spec.drift, m.spec.scorer

    @dg.asset_check(
        asset=m.key("predictions"),
        name=CHECK,
        additional_ins={"validated_dataset": dg.AssetIn(m.key("validated_dataset"))},
        description=(
            f"The latest {rules.window} served records against the base rows, feature by feature "
            f"(KS or chi-square at alpha {rules.alpha:g} shared by the features, and PSI >= "
            f"{rules.min_psi:g}); with a label-free estimate of {metric.name}."
        ),
    )
    def no_feature_drift(
        validated_dataset: pd.DataFrame,
        prediction_log: PredictionLogResource,
        registry: MlflowRegistry,
    ) -> dg.AssetCheckResult:
        served = recent(prediction_log.store, m.name, rules.window)
        if len(served) < rules.min_rows:
            return dg.AssetCheckResult(
                passed=True,
                description=f"{len(served)} served records, fewer than min_rows {rules.min_rows}",
                metadata={"served_records": len(served)},
            )
        reference = validated_dataset[feature_columns(spec, validated_dataset)]
        found = feature_drift(reference, pd.DataFrame(list(served["features"])), rules)
        moved = [f.feature for f in sorted(found, key=lambda f: -f.psi) if f.drifted]
        table = "\n".join(
            ["| feature | test | p-value | PSI | drifted |", "|---|---|---|---|---|"]
            + [
                f"| {f.feature} | {f.test} | {f.p_value:.2g} | {f.psi:.3f} | {f.drifted} |"
                for f in sorted(found, key=lambda f: -f.psi)
            ]
        )
        estimate = estimated_score(
            metric, served["prediction"].tolist(), served["probabilities"].tolist()
        )
        # Kept on the registered model too: the service exports it (dashboard, FeatureDrift).
        report = DriftReport(time.time(), len(served), moved, metric.name, estimate)
        record_drift(registry.client, m.name, report)
        return dg.AssetCheckResult(
            passed=not moved,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"drifted: {', '.join(moved)}" if moved else "no feature drifted",
            metadata={
                "drifted": ", ".join(moved) or "none",
                "served_records": len(served),
                "features": dg.MetadataValue.md(table),
                f"estimated_{metric.name}": "n/a" if estimate is None else estimate,
            },
        )

    return [no_feature_drift]
