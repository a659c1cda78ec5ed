"""The release stage: the gate moves ``champion`` or holds it, then the champion becomes a bento."""

import json
from dataclasses import replace

import dagster as dg

from mlserve_assets.assets.keys import ModelAssets
from mlserve_assets.assets.training import RegisteredVersion
from mlserve_assets.ml.gate import Evidence, GateDecision, judge
from mlserve_assets.ml.split import DatasetSplit
from mlserve_assets.resources.bentos import BentoPackager
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from serving.model.artifact import trusted_types
from serving.registry import CHALLENGER, CHAMPION, Tag, feedback_watermark, move_alias
from serving.store.moves import StaleMove

NO_CHAMPION = "none"


def _gate_metadata(
    decision: GateDecision, evidence: Evidence, version: RegisteredVersion
) -> dict[str, object]:
    figures: dict[str, object] = {
        "promoted": decision.promote,
        "reason": decision.reason,
        "metric": decision.metric,
        "challenger_version": version.version,
        "challenger_metric": decision.challenger,
        "threshold": decision.threshold,
        "champion_metric": decision.champion if decision.champion is not None else "none",
        "min_improvement": decision.min_improvement,
        "improvement": decision.improvement if decision.improvement is not None else "n/a",
        "confidence": evidence.confidence,
    }
    if evidence.interval is not None:
        figures["improvement_low"], figures["improvement_high"] = evidence.interval
    for holdout, part in evidence.parts.items():
        for figure, value in part.items():
            figures[f"{holdout}_{figure}"] = "none" if value is None else value
    return figures


def _mover(context: dg.AssetExecutionContext) -> str:
    """Who moves the alias: the gate, in this run, started by a sensor or by hand."""
    sensor = context.run.tags.get("dagster/sensor_name")
    started = f"sensor {sensor}" if sensor else "by hand"
    return f"gate, run {context.run.run_id} ({started})"


def release_assets(m: ModelAssets) -> list[dg.AssetsDefinition]:
    """``champion`` and ``bento`` for one model."""
    spec, metric = m.spec, m.spec.scorer

    @dg.asset(
        key=m.key(CHAMPION),
        ins=m.ins("registered_version", "split"),
        kinds={"mlflow"},
        description=(
            "Moves the champion alias to the new version only if the gate passes it: on held-out "
            "recent labels and the base test rows, with a paired bootstrap interval."
        ),
        **m.common(),
    )
    def champion(
        context: dg.AssetExecutionContext,
        registered_version: RegisteredVersion,
        split: DatasetSplit,
        registry: MlflowRegistry,
        prediction_log: PredictionLogResource,
    ) -> dg.Output[str]:
        current = registry.champion(m.name, prediction_log)
        if (
            registered_version.reused
            and current
            and str(current.version) == registered_version.version
        ):
            # Judging the champion against itself would tag it held, and the sensor backs off
            # after a held gate: an unchanged rerun decides nothing.
            kept = registered_version.version
            return dg.Output(
                kept,
                metadata={
                    "decision": f"UNCHANGED v{kept} still serves: retrained from the same rows, "
                    "spec and code, nothing to decide",
                    "champion_version": kept,
                    "champion": registry.version_link(m.name, kept),
                },
            )
        # By version, not alias: the champion scored is the one whose watermark and tags were read.
        trusted = trusted_types(spec.trusted_types)
        challenger = registry.load(m.name, registered_version.version, trusted)
        incumbent = (
            None if current is None else registry.load(m.name, str(current.version), trusted)
        )
        decision, evidence = judge(
            metric,
            spec.gate,
            split,
            challenger,
            incumbent,
            feedback_watermark(current),
            prediction_log.trusted_senders(spec.gate.trusted_sources),
        )
        live = (
            None
            if current is None
            else prediction_log.live_metric(
                m.name, current.version, metric, spec.retrain.live_window
            )
        )
        # Promoted: the champion. Held only for lack of evidence: the challenger, so that live
        # traffic supplies the evidence (``shadow.held``).
        tried = decision.unproven and spec.shadow.held
        metadata = _gate_metadata(decision, evidence, registered_version)
        judged = None if current is None else str(current.version)
        if decision.promote or tried:
            try:
                move_alias(
                    registry.client,
                    prediction_log.store,
                    m.name,
                    registered_version.version,
                    by=_mover(context),
                    reason=decision.reason
                    if decision.promote
                    else f"held for lack of evidence, tried in shadow: {decision.reason}",
                    evidence=metadata,
                    alias=CHAMPION if decision.promote else CHALLENGER,
                    # Judged against ``current``: a move since (the shadow's, baking's) wins.
                    replacing=judged if decision.promote and not registry.trust_registry else ...,
                )
            except StaleMove as exc:
                decision = replace(decision, promote=False, unproven=False, reason=str(exc))
                metadata = _gate_metadata(decision, evidence, registered_version)
                tried, now = False, registry.champion(m.name, prediction_log)
                judged = None if now is None else str(now.version)
        registry.tag_version(
            m.name,
            registered_version.version,
            {
                Tag.GATE: "passed" if decision.promote else "held",
                Tag.GATE_REASON: decision.reason,
                Tag.GATE_EVIDENCE: json.dumps(metadata, default=str),
                **({} if live is None else {Tag.CHAMPION_LIVE: repr(live)}),
            },
        )
        serving = decision.serving_version(registered_version.version, judged)
        if decision.promote:
            headline = f"PROMOTED v{registered_version.version}: {decision.reason}"
        else:
            kept = f"v{serving} still serves" if serving else "nothing serves yet"
            headline = f"HELD v{registered_version.version} ({kept}): {decision.reason}"
            if tried:
                headline += f"; v{registered_version.version} is now scored in shadow"
        return dg.Output(
            serving or NO_CHAMPION,
            metadata={
                "decision": headline,  # first: the line the UI shows on top
                **metadata,
                "champion_version": serving or NO_CHAMPION,
                "champion": registry.version_link(m.name, serving) if serving else NO_CHAMPION,
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
        built = bentos.build(m.name, champion, spec.trusted_types)
        return dg.MaterializeResult(
            metadata={
                "bento": built["bento"],
                "bentoml_model": built["model"],
                "mlflow_version": champion,
                # The bento store is the project's, not BentoML's default: say where.
                "serve": dg.MetadataValue.text(
                    f"mlserve serve {m.name}  (or: BENTOML_HOME={bentos.bentoml_home} "
                    f"bentoml serve {built['bento']})"
                ),
            }
        )

    return [champion, bento]
