"""The training stage: the split, every candidate fitted and logged, the best one registered."""

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from mlserve_assets.ml.leaderboard import CandidateResult, Leaderboard
from mlserve_assets.ml.train import DatasetSplit, fit_candidate, split_dataset, with_feedback
from mlserve_assets.ml.validation import feature_columns
from mlserve_assets.resources.mlflow_registry import MlflowRegistry
from mlserve_assets.stages.naming import ModelAssets
from serving.contract import Tag


@dataclass(frozen=True)
class RegisteredVersion:
    """The registered version made from the best candidate of a training."""

    model_name: str
    version: str
    score: float
    run_id: str
    data_version: str


def run_tags(context: dg.AssetExecutionContext, data: DatasetSplit) -> dict[str, str]:
    """Tags tying an MLflow run or version to the Dagster run and the data it saw."""
    return {
        Tag.DAGSTER_RUN: context.run.run_id,
        Tag.DAGSTER_ASSET: context.asset_key.to_user_string(),
        Tag.DATA_VERSION: data.data_version,
        Tag.FEEDBACK_TRAIN_ROWS: str(data.feedback_train_rows),
        Tag.FEEDBACK_TEST_ROWS: str(data.feedback_test_rows),
    }


def training_assets(m: ModelAssets) -> list[dg.AssetsDefinition]:
    """``split``, ``candidates`` and ``registered_version`` for one model."""
    spec, metric = m.spec, m.spec.scorer

    @dg.asset(
        key=m.key("split"),
        ins=m.ins("validated_dataset", "feedback"),
        kinds={"sklearn"},
        description="Train rows and the held-out rows that score candidates and champion alike.",
        **m.common(),
    )
    def split(validated_dataset: pd.DataFrame, feedback: pd.DataFrame) -> dg.Output[DatasetSplit]:
        features = feature_columns(spec, validated_dataset)
        base = split_dataset(validated_dataset, features, spec.target, spec.split)
        data = with_feedback(base, feedback, spec.target, spec.retrain.data)
        return dg.Output(
            data,
            metadata={
                "train_rows": len(data.x_train),
                "test_rows": len(data.x_test),
                "feedback_train_rows": data.feedback_train_rows,
                "feedback_test_rows": data.feedback_test_rows,
                "policy": spec.retrain.data.policy,
                "features": len(data.features),
                "data_version": data.data_version,
            },
        )

    @dg.asset(
        key=m.key("candidates"),
        ins=m.ins("split"),
        kinds={"sklearn", "mlflow"},
        description="Every candidate fitted and logged as a nested MLflow run.",
        **m.common(),
    )
    def candidates(
        context: dg.AssetExecutionContext, split: DatasetSplit, mlflow: MlflowRegistry
    ) -> dg.Output[Leaderboard]:
        tags = run_tags(context, split)
        results = []
        with mlflow.training_run(m.name, tags) as parent:
            for candidate in spec.candidates:
                fitted = fit_candidate(candidate, split, metric)
                logged = mlflow.log_candidate(
                    model_name=m.name,
                    parent_run_id=parent,
                    candidate=candidate.name,
                    estimator=fitted.estimator,
                    params=fitted.estimator.get_params(deep=False),
                    metrics={metric.name: fitted.score, "fit_seconds": fitted.fit_seconds},
                    example=split.x_train.head(5),
                    tags=tags,
                )
                estimator = type(fitted.estimator).__name__
                results.append(
                    CandidateResult(
                        candidate.name, fitted.score, logged.run_id, logged.model_uri, estimator
                    )
                )
        board = Leaderboard.ranked(parent, metric, results)
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
        key=m.key("registered_version"),
        ins=m.ins("candidates", "split"),
        kinds={"mlflow"},
        description="The best candidate registered as a new model version (not yet promoted).",
        **m.common(),
    )
    def registered_version(
        context: dg.AssetExecutionContext,
        candidates: Leaderboard,
        split: DatasetSplit,
        mlflow: MlflowRegistry,
    ) -> dg.Output[RegisteredVersion]:
        best = candidates.best
        version = mlflow.register(
            m.name,
            best.model_uri,
            tags={
                **run_tags(context, split),
                Tag.CANDIDATE: best.name,
                Tag.METRIC: metric.name,
                Tag.SCORE: f"{best.score}",
                Tag.FEEDBACK_ROWS: str(split.feedback_train_rows),
                Tag.FEEDBACK_WATERMARK: repr(split.feedback_watermark),
            },
        )
        registered = RegisteredVersion(m.name, version, best.score, best.run_id, split.data_version)
        return dg.Output(
            registered,
            metadata={
                "version": version,
                "candidate": best.name,
                metric.name: best.score,
                "mlflow_run": best.run_id,
            },
        )

    return [split, candidates, registered_version]
