"""The feedback stage: what the served versions logged, and the labelled rows joined to it.

The service writes the log; these assets observe it, so the UI shows traffic and labels in the
model's lineage, and ``split`` reads the labelled rows as an input like any other.
"""

import dagster as dg
import pandas as pd

from mlserve_assets.assets.keys import ModelAssets
from mlserve_assets.ml.labels import feature_frame, live_metrics
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from serving.registry import feedback_watermark


def feedback_assets(m: ModelAssets) -> list[dg.AssetsDefinition]:
    """``predictions`` and ``feedback`` for one model."""
    spec, metric = m.spec, m.spec.scorer

    @dg.asset(
        key=m.key("predictions"),
        kinds={"bentoml"},
        description="Predictions the served versions logged (the service writes, this observes).",
        **m.common(),
    )
    def predictions(prediction_log: PredictionLogResource) -> dg.MaterializeResult:
        served = prediction_log.versions_served(m.name)
        table = "\n".join(
            ["| version | predictions |", "|---|---|"]
            + [f"| {v} | {n} |" for v, n in sorted(served.items(), key=lambda i: int(i[0]))]
        )
        return dg.MaterializeResult(
            metadata={"rows": sum(served.values()), "by_version": dg.MetadataValue.md(table)}
        )

    @dg.asset(
        key=m.key("feedback"),
        deps=[m.key("predictions")],
        kinds={"pandas"},
        description="Labelled predictions: logged features joined with their ground truth.",
        **m.common(),
    )
    def feedback(
        prediction_log: PredictionLogResource, registry: MlflowRegistry
    ) -> dg.Output[pd.DataFrame]:
        labelled = prediction_log.labelled(m.name)
        features = spec.features or (list(labelled["features"].iloc[0]) if len(labelled) else [])
        live = live_metrics(labelled, metric)
        current = registry.champion(m.name, prediction_log)
        trained_until = feedback_watermark(current)
        metadata: dict[str, object] = {
            "labels": f"{len(labelled)} labelled predictions" if len(labelled) else "no labels yet",
            "labelled_rows": len(labelled),
            "new_since_champion": int((labelled["received_at"] > trained_until).sum()),
            "live_metrics": dg.MetadataValue.md(live.to_markdown(index=False)),
        }
        # As the sensor and the gate see it: the champion's latest live_window labels.
        champion_live = (
            None
            if current is None
            else prediction_log.live_metric(
                m.name, current.version, metric, spec.retrain.live_window
            )
        )
        if champion_live is not None:
            metadata[f"champion_live_{metric.name}"] = champion_live
        rows = feature_frame(labelled, features, spec.target)
        return dg.Output(rows, metadata={**metadata, "distinct_inputs": len(rows)})

    return [predictions, feedback]
