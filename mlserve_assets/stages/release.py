"""The release stage: the gate moves ``champion`` or holds it, then the champion becomes a bento."""

import dagster as dg

from mlserve_assets.ml.gate import GateDecision, decide
from mlserve_assets.ml.train import DatasetSplit, score
from mlserve_assets.resources.bento_packager import BentoPackager
from mlserve_assets.resources.mlflow_registry import MlflowRegistry
from mlserve_assets.stages.naming import ModelAssets
from mlserve_assets.stages.training import RegisteredVersion
from serving.contract import CHAMPION, Tag

NO_CHAMPION = "none"


def _gate_metadata(decision: GateDecision, version: RegisteredVersion) -> dict[str, object]:
    return {
        "promoted": decision.promote,
        "reason": decision.reason,
        "metric": decision.metric,
        "challenger_version": version.version,
        "challenger_metric": decision.challenger,
        "threshold": decision.threshold,
        "champion_metric": decision.champion if decision.champion is not None else "none",
        "min_improvement": decision.min_improvement,
        "improvement": decision.improvement if decision.improvement is not None else "n/a",
    }


def release_assets(m: ModelAssets) -> list[dg.AssetsDefinition]:
    """``champion`` and ``bento`` for one model."""
    spec, metric = m.spec, m.spec.scorer

    @dg.asset(
        key=m.key(CHAMPION),
        ins=m.ins("registered_version", "split"),
        kinds={"mlflow"},
        description="Moves the champion alias to the new version only if it passes the gate.",
        **m.common(),
    )
    def champion(
        registered_version: RegisteredVersion, split: DatasetSplit, mlflow: MlflowRegistry
    ) -> dg.Output[str]:
        current = mlflow.champion(m.name)
        champion_score = (
            None
            if current is None
            else score(mlflow.load(mlflow.champion_uri(m.name)), split, metric)
        )
        decision = decide(metric, registered_version.score, champion_score, spec.gate)
        mlflow.tag_version(
            m.name,
            registered_version.version,
            {
                Tag.GATE: "passed" if decision.promote else "held",
                Tag.GATE_REASON: decision.reason,
            },
        )
        if decision.promote:
            mlflow.promote(m.name, registered_version.version)
        serving = decision.serving_version(
            registered_version.version, None if current is None else str(current.version)
        )
        return dg.Output(
            serving or NO_CHAMPION,
            metadata={
                **_gate_metadata(decision, registered_version),
                "champion_version": serving or NO_CHAMPION,
            },
        )

    @dg.asset(
        key=m.key("bento"),
        ins=m.ins(CHAMPION),
        kinds={"bentoml"},
        description="The champion packaged as a bento that serves without reaching MLflow.",
        **m.common(),
    )
    def bento(champion: str, bentos: BentoPackager) -> dg.MaterializeResult:
        if champion == NO_CHAMPION:
            raise dg.Failure(f"{m.name} has no champion to package: no version passed the gate yet")
        built = bentos.build(m.name, champion)
        return dg.MaterializeResult(
            metadata={
                "bento": built["bento"],
                "bentoml_model": built["model"],
                "mlflow_version": champion,
                "serve": dg.MetadataValue.text(f"bentoml serve {built['bento']}"),
            }
        )

    return [champion, bento]
