"""The asset factory: one model spec in, that model's asset graph, checks and job out.

This is the only place assets are made. Every asset is thin wiring: the work lives in ``ml/`` (pure)
and in resources (external systems), so what the UI shows maps one-to-one onto testable functions.
"""

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from mlserve_assets.ml.feedback import feature_frame, live_metrics
from mlserve_assets.ml.gate import GateDecision, decide
from mlserve_assets.ml.train import (
    DatasetSplit,
    data_version,
    fit_candidate,
    score,
    split_dataset,
    with_feedback,
)
from mlserve_assets.ml.validation import CHECK_NAMES, feature_columns, run_checks
from mlserve_assets.resources.bento_packager import BentoPackager
from mlserve_assets.resources.mlflow_registry import CHAMPION, WATERMARK, MlflowRegistry
from mlserve_assets.resources.prediction_log import PredictionLogResource
from mlserve_assets.sensors import build_retrain_sensor
from mlserve_assets.spec import ModelSpec


@dataclass(frozen=True)
class CandidateResult:
    """A candidate as trained and logged: what the leaderboard and registration need."""

    name: str
    score: float
    run_id: str
    model_uri: str
    estimator: str


@dataclass(frozen=True)
class Leaderboard:
    """All candidates of one training, best first by the spec's metric."""

    parent_run_id: str
    metric: str
    results: list[CandidateResult]

    @property
    def best(self) -> CandidateResult:
        """The winner."""
        return self.results[0]

    def markdown(self) -> str:
        """A table for the Dagster UI."""
        rows = [
            f"| {r.name} | {r.estimator} | {r.score:.4f} | `{r.run_id}` |" for r in self.results
        ]
        header = f"| candidate | estimator | {self.metric} | MLflow run |\n|---|---|---|---|"
        return "\n".join([header, *rows])


@dataclass(frozen=True)
class RegisteredVersion:
    """The registered version made from the best candidate of a training."""

    model_name: str
    version: str
    score: float
    run_id: str
    data_version: str


def _run_tags(context: dg.AssetExecutionContext, data: DatasetSplit) -> dict[str, str]:
    return {
        "dagster.run_id": context.run.run_id,
        "dagster.asset_key": context.asset_key.to_user_string(),
        "mlserve.data_version": data.data_version,
        "mlserve.feedback_train_rows": str(data.feedback_train_rows),
        "mlserve.feedback_test_rows": str(data.feedback_test_rows),
    }


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


def build_model_defs(model: ModelSpec) -> dg.Definitions:
    """The asset graph, checks and training job for one declared model."""
    name = model.name
    metric = model.scorer

    def key(stage: str) -> dg.AssetKey:
        return dg.AssetKey([name, stage])

    common = {"group_name": name, "tags": {"mlserve/model": name}}

    @dg.asset(key=key("dataset"), kinds={"pandas"}, description=f"Raw rows for {name}.", **common)
    def dataset() -> dg.Output[pd.DataFrame]:
        frame = model.source.load()
        return dg.Output(
            frame,
            data_version=dg.DataVersion(data_version(frame)),
            metadata={
                "rows": len(frame),
                "columns": len(frame.columns),
                "source": model.source.kind,
            },
        )

    @dg.asset(
        key=key("validated_dataset"),
        ins={"dataset": dg.AssetIn(key("dataset"))},
        kinds={"pandas"},
        description="Target and features only, after the spec's blocking data checks.",
        check_specs=[
            dg.AssetCheckSpec(c, asset=key("validated_dataset"), blocking=True) for c in CHECK_NAMES
        ],
        **common,
    )
    def validated_dataset(dataset: pd.DataFrame):
        outcomes = run_checks(model, dataset)
        ok = all(o.passed for o in outcomes)
        selected = dataset[[*feature_columns(model, dataset), model.target]] if ok else dataset
        yield dg.Output(
            selected, metadata={"rows": len(selected), "columns": len(selected.columns)}
        )
        for outcome in outcomes:
            yield dg.AssetCheckResult(
                check_name=outcome.name,
                passed=outcome.passed,
                description="; ".join(outcome.failures) or None,
                metadata={"failures": len(outcome.failures)},
            )

    @dg.asset(
        key=key("predictions"),
        kinds={"bentoml"},
        description="Predictions the served versions logged (the service writes, this observes).",
        **common,
    )
    def predictions(prediction_log: PredictionLogResource) -> dg.MaterializeResult:
        served = prediction_log.store.versions_served(name)
        table = "\n".join(
            ["| version | predictions |", "|---|---|"]
            + [f"| {v} | {n} |" for v, n in sorted(served.items(), key=lambda i: int(i[0]))]
        )
        return dg.MaterializeResult(
            metadata={"rows": sum(served.values()), "by_version": dg.MetadataValue.md(table)}
        )

    @dg.asset(
        key=key("feedback"),
        deps=[key("predictions")],
        kinds={"pandas"},
        description="Labelled predictions: logged features joined with their ground truth.",
        **common,
    )
    def feedback(
        prediction_log: PredictionLogResource, mlflow: MlflowRegistry
    ) -> dg.Output[pd.DataFrame]:
        labelled = prediction_log.store.labelled(name)
        features = model.features or (list(labelled["features"].iloc[0]) if len(labelled) else [])
        rows = feature_frame(labelled, features, model.target)
        live = live_metrics(labelled, metric)
        current = mlflow.champion(name)
        trained_until = float(current.tags.get(WATERMARK, 0)) if current else 0.0
        metadata: dict[str, object] = {
            "labelled_rows": len(labelled),
            "distinct_inputs": len(rows),
            "new_since_champion": int((labelled["received_at"] > trained_until).sum())
            if len(labelled)
            else 0,
            "live_metrics": dg.MetadataValue.md(live.to_markdown(index=False)),
        }
        if current is not None and str(current.version) in set(live["model_version"]):
            row = live[live["model_version"] == str(current.version)].iloc[0]
            metadata[f"champion_live_{metric.name}"] = float(row[metric.name])
        return dg.Output(rows, metadata=metadata)

    @dg.asset(
        key=key("split"),
        ins={
            "validated_dataset": dg.AssetIn(key("validated_dataset")),
            "feedback": dg.AssetIn(key("feedback")),
        },
        kinds={"sklearn"},
        description="Train rows and the held-out rows that score candidates and champion alike.",
        **common,
    )
    def split(validated_dataset: pd.DataFrame, feedback: pd.DataFrame) -> dg.Output[DatasetSplit]:
        features = feature_columns(model, validated_dataset)
        base = split_dataset(validated_dataset, features, model.target, model.split)
        data = with_feedback(base, feedback, model.target, model.retrain.data)
        return dg.Output(
            data,
            metadata={
                "train_rows": len(data.x_train),
                "test_rows": len(data.x_test),
                "feedback_train_rows": data.feedback_train_rows,
                "feedback_test_rows": data.feedback_test_rows,
                "policy": model.retrain.data.policy,
                "features": len(data.features),
                "data_version": data.data_version,
            },
        )

    @dg.asset(
        key=key("candidates"),
        ins={"split": dg.AssetIn(key("split"))},
        kinds={"sklearn", "mlflow"},
        description="Every candidate fitted and logged as a nested MLflow run.",
        **common,
    )
    def candidates(
        context: dg.AssetExecutionContext, split: DatasetSplit, mlflow: MlflowRegistry
    ) -> dg.Output[Leaderboard]:
        tags = _run_tags(context, split)
        example = split.x_train.head(5)
        results = []
        with mlflow.training_run(name, tags) as parent:
            for candidate in model.candidates:
                fitted = fit_candidate(candidate, split, metric)
                logged = mlflow.log_candidate(
                    model_name=name,
                    parent_run_id=parent,
                    candidate=candidate.name,
                    estimator=fitted.estimator,
                    params=fitted.estimator.get_params(deep=False),
                    metrics={metric.name: fitted.score, "fit_seconds": fitted.fit_seconds},
                    example=example,
                    tags=tags,
                )
                results.append(
                    CandidateResult(
                        candidate.name,
                        fitted.score,
                        logged.run_id,
                        logged.model_uri,
                        type(fitted.estimator).__name__,
                    )
                )
        ranked = sorted(results, key=lambda r: r.score, reverse=metric.higher_is_better)
        board = Leaderboard(parent, metric.name, ranked)
        return dg.Output(
            board,
            metadata={
                "leaderboard": dg.MetadataValue.md(board.markdown()),
                "best_candidate": board.best.name,
                f"best_{metric.name}": board.best.score,
                "mlflow_parent_run": parent,
            },
        )

    @dg.asset(
        key=key("registered_version"),
        ins={"candidates": dg.AssetIn(key("candidates")), "split": dg.AssetIn(key("split"))},
        kinds={"mlflow"},
        description="The best candidate registered as a new model version (not yet promoted).",
        **common,
    )
    def registered_version(
        context: dg.AssetExecutionContext,
        candidates: Leaderboard,
        split: DatasetSplit,
        mlflow: MlflowRegistry,
    ) -> dg.Output[RegisteredVersion]:
        best = candidates.best
        version = mlflow.register(
            name,
            best.model_uri,
            tags={
                **_run_tags(context, split),
                "mlserve.candidate": best.name,
                "mlserve.metric": metric.name,
                "mlserve.score": f"{best.score}",
                "mlserve.feedback_rows": str(split.feedback_train_rows),
                WATERMARK: repr(split.feedback_watermark),
            },
        )
        registered = RegisteredVersion(name, version, best.score, best.run_id, split.data_version)
        return dg.Output(
            registered,
            metadata={
                "version": version,
                "candidate": best.name,
                metric.name: best.score,
                "mlflow_run": best.run_id,
            },
        )

    @dg.asset(
        key=key(CHAMPION),
        ins={
            "registered_version": dg.AssetIn(key("registered_version")),
            "split": dg.AssetIn(key("split")),
        },
        kinds={"mlflow"},
        description="Moves the champion alias to the new version only if it passes the gate.",
        **common,
    )
    def champion(
        registered_version: RegisteredVersion, split: DatasetSplit, mlflow: MlflowRegistry
    ) -> dg.Output[str]:
        current = mlflow.champion(name)
        champion_score = (
            None
            if current is None
            else score(mlflow.load(f"models:/{name}@{CHAMPION}"), split, metric)
        )
        decision = decide(
            metric,
            registered_version.score,
            champion_score,
            model.gate.threshold,
            model.gate.min_improvement,
        )
        mlflow.tag_version(
            name,
            registered_version.version,
            {
                "mlserve.gate": "passed" if decision.promote else "held",
                "mlserve.gate_reason": decision.reason,
            },
        )
        if decision.promote:
            mlflow.promote(name, registered_version.version)
        serving = (
            registered_version.version
            if decision.promote
            else (str(current.version) if current else "none")
        )
        return dg.Output(
            serving,
            metadata={**_gate_metadata(decision, registered_version), "champion_version": serving},
        )

    @dg.asset(
        key=key("bento"),
        ins={"champion": dg.AssetIn(key(CHAMPION))},
        kinds={"bentoml"},
        description="The champion packaged as a bento that serves without reaching MLflow.",
        **common,
    )
    def bento(champion: str, bentos: BentoPackager) -> dg.MaterializeResult:
        if champion == "none":
            raise dg.Failure(f"{name} has no champion to package: no version passed the gate yet")
        built = bentos.build(name, champion)
        return dg.MaterializeResult(
            metadata={
                "bento": built["bento"],
                "bentoml_model": built["model"],
                "mlflow_version": champion,
                "serve": dg.MetadataValue.text(f"bentoml serve {built['bento']}"),
            }
        )

    job = dg.define_asset_job(
        f"train_{name}",
        selection=dg.AssetSelection.groups(name),
        description=f"Load, check, train with feedback, register, gate and package {name}.",
        # One process for the whole run: a process per step re-imports MLflow, scikit-learn and
        # Dagster nine times, which was most of the loop's feedback-to-new-version time.
        executor_def=dg.in_process_executor,
    )
    return dg.Definitions(
        assets=[
            dataset,
            validated_dataset,
            predictions,
            feedback,
            split,
            candidates,
            registered_version,
            champion,
            bento,
        ],
        jobs=[job],
        sensors=[build_retrain_sensor(model, job.name)],
    )
