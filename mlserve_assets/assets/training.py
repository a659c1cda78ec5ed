"""The training stage: the split, every candidate fitted and logged, the best one registered."""

import hashlib
import json
from dataclasses import dataclass, replace
from importlib import metadata

import dagster as dg
import pandas as pd
import sklearn

from mlserve_assets.assets.keys import ModelAssets
from mlserve_assets.ml.labels import admissible, label_range
from mlserve_assets.ml.leaderboard import CandidateResult, Leaderboard
from mlserve_assets.ml.prepare import column_kinds, needs_preparation
from mlserve_assets.ml.split import DatasetSplit, split_dataset
from mlserve_assets.ml.train import refit, select_candidates
from mlserve_assets.ml.validation import feature_columns
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.spec.candidates import final_step
from mlserve_assets.spec.models import ModelSpec
from serving.model.artifact import trusted_types
from serving.registry import Tag


@dataclass(frozen=True)
class RegisteredVersion:
    """The registered version made from the best candidate of a training."""

    model_name: str
    version: str
    score: float
    run_id: str
    data_version: str
    reused: bool = False
    """An unchanged rerun: this version was trained from the same fingerprint before."""


def fingerprint(spec: ModelSpec, data: DatasetSplit, candidate: str, mix: str) -> str:
    """What a version is a function of: rows (base and labels), the spec, the code, the choice.

    The code is mlserve's and scikit-learn's versions: an edited checkout of the same version
    is not told apart, which is what a rerun after such an edit would register anew for.
    """
    facts = [data.data_version, spec.model_dump_json(), candidate, mix]
    facts += [metadata.version("mlserve"), sklearn.__version__]
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:24]


def run_tags(context: dg.AssetExecutionContext, data: DatasetSplit) -> dict[str, str]:
    """Tags tying an MLflow run or version to the Dagster run and the data it saw."""
    return {
        Tag.DAGSTER_RUN: context.run.run_id,
        Tag.DAGSTER_ASSET: context.asset_key.to_user_string(),
        Tag.DATA_VERSION: data.data_version,
        Tag.FEEDBACK_TRAIN_ROWS: str(len(data.feedback_fit)),
        Tag.FEEDBACK_TEST_ROWS: str(len(data.feedback_gate)),
    }


def training_assets(m: ModelAssets) -> list[dg.AssetsDefinition]:
    """``split``, ``candidates`` and ``registered_version`` for one model."""
    spec, metric = m.spec, m.spec.scorer
    policy = spec.retrain.data

    @dg.asset(
        key=m.key("split"),
        ins=m.ins("validated_dataset", "feedback"),
        kinds={"sklearn"},
        description="Every row in its role: train, selection (chooses) and test/gate (judges).",
        **m.common(),
    )
    def split(
        validated_dataset: pd.DataFrame,
        feedback: pd.DataFrame,
        prediction_log: PredictionLogResource,
    ) -> dg.Output[DatasetSplit]:
        features = feature_columns(spec, validated_dataset)
        base_target = validated_dataset[spec.target]
        labels = (
            label_range(base_target, policy.label_margin) if spec.task == "regression" else None
        )
        feedback, kept_out = admissible(feedback, spec.columns, spec.target, labels)
        kinds = column_kinds(spec, validated_dataset, features)
        if spec.prepare == "none" or not needs_preparation(validated_dataset, kinds):
            kinds = None
        data = split_dataset(
            validated_dataset,
            features,
            spec.target,
            spec.split,
            feedback,
            policy,
            kinds,
            role_secret=prediction_log.role_secret() if len(feedback) else None,
        )
        return dg.Output(
            data,
            metadata={
                "base_train_rows": len(data.base_train),
                "base_selection_rows": len(data.base_select),
                "base_test_rows": len(data.base_test),
                "feedback_fit_rows": len(data.feedback_fit),
                "selection_folds": len(set(data.feedback_folds)),
                "feedback_gate_rows": len(data.feedback_gate),
                # Labelled served records that broke a column rule (or, as the target, a label
                # out of range): answered, but neither trained on nor judged with.
                "feedback_kept_out": dg.MetadataValue.json(kept_out),
                "policy": policy.policy,
                "features": len(data.features),
                "prepared": dg.MetadataValue.json(data.kinds or {}),
                "data_version": data.data_version,
            },
        )

    @dg.asset(
        key=m.key("candidates"),
        ins=m.ins("split"),
        kinds={"sklearn", "mlflow"},
        description=(
            "Every candidate on every data mix scored on the selection rows (the best third "
            "after the first fold on every fold); the best refitted on train and selection rows "
            "and logged as the final model."
        ),
        **m.common(),
    )
    def candidates(
        context: dg.AssetExecutionContext, split: DatasetSplit, registry: MlflowRegistry
    ) -> dg.Output[Leaderboard]:
        tags = run_tags(context, split)
        selection = select_candidates(spec.candidates, split, metric, policy, spec.gate.base_weight)
        if not selection.fitted:
            reasons = "; ".join(f"{s.name} x {s.mix}: {s.reason}" for s in selection.skipped)
            raise dg.Failure(f"no candidate could be fitted on any mix ({reasons})")
        with registry.training_run(m.name, tags) as parent:
            results = [
                CandidateResult(
                    trial.name,
                    trial.mix,
                    trial.score,
                    registry.log_trial(
                        model_name=m.name,
                        parent_run_id=parent,
                        candidate=trial.name,
                        mix=trial.mix,
                        params=trial.estimator.get_params(deep=False),
                        metrics={
                            metric.name: trial.score,
                            "fit_seconds": trial.fit_seconds,
                            "train_rows": trial.rows,
                        },
                        tags=tags,
                    ),
                    type(final_step(trial.estimator)[1]).__name__,
                    trial.rows,
                )
                for trial in selection.fitted
            ]
            board = Leaderboard.ranked(parent, metric, results, selection.skipped)
            estimator, seconds, rows = refit(
                spec.candidates, board.best.name, board.best.mix, split, policy
            )
            logged = registry.log_candidate(
                model_name=m.name,
                parent_run_id=parent,
                candidate=board.best.name,
                estimator=estimator,
                params=estimator.get_params(deep=False),
                metrics={"fit_seconds": seconds, "train_rows": rows},
                example=split.base_train.x.head(5),
                schema=split.schema,
                tags={**tags, Tag.MIX: board.best.mix},
                trusted=trusted_types(spec.trusted_types),
            )
            twin = registry.log_twin(
                logged.model_uri, estimator, list(split.schema), split.base_test.x
            )
        board = replace(
            board, model_uri=logged.model_uri, model_run_id=logged.run_id, twin=twin.tag()
        )
        return dg.Output(
            board,
            metadata={
                "leaderboard": dg.MetadataValue.md(board.markdown()),
                "best_candidate": board.best.name,
                "best_mix": board.best.mix,
                f"best_{metric.name}": board.best.score,
                "mlflow_parent_run": registry.run_link(parent),
                **{f"{metric.name}/{r.name}/{r.mix}": r.score for r in board.results},
            },
        )

    @dg.asset(
        key=m.key("registered_version"),
        ins=m.ins("candidates", "split"),
        kinds={"mlflow"},
        description="The final model registered as a new version (not yet promoted).",
        **m.common(),
    )
    def registered_version(
        context: dg.AssetExecutionContext,
        candidates: Leaderboard,
        split: DatasetSplit,
        registry: MlflowRegistry,
    ) -> dg.Output[RegisteredVersion]:
        best = candidates.best
        made_from = fingerprint(spec, split, best.name, best.mix)
        reused = registry.version_tagged(m.name, Tag.FINGERPRINT, made_from)
        version = reused or registry.register(
            m.name,
            candidates.model_uri,
            tags={
                **run_tags(context, split),
                Tag.CANDIDATE: best.name,
                Tag.MIX: best.mix,
                Tag.METRIC: metric.name,
                Tag.SCORE: f"{best.score}",
                Tag.FEEDBACK_ROWS: str(split.feedback_rows),
                Tag.FEEDBACK_WATERMARK: repr(split.feedback_watermark),
                Tag.FINGERPRINT: made_from,
                Tag.ONNX: candidates.twin,
                Tag.COLUMN_RULES: json.dumps(
                    {c: r.model_dump(exclude={"dtype"}) for c, r in spec.columns.items()}
                ),
            },
            description=spec.description,
        )
        registered = RegisteredVersion(
            m.name, version, best.score, candidates.model_run_id, split.data_version, bool(reused)
        )
        return dg.Output(
            registered,
            metadata={
                "registered": (
                    f"reused v{version}: same rows, spec, code and choice as its training, "
                    "so no new version"
                    if reused
                    else f"new version v{version}"
                ),
                "version": version,
                "candidate": best.name,
                "mix": best.mix,
                metric.name: best.score,
                "onnx_twin": json.loads(candidates.twin)["reason"] if candidates.twin else "none",
                "mlflow_run": registry.run_link(candidates.model_run_id),
                "mlflow_version": registry.version_link(m.name, version),
            },
        )

    return [split, candidates, registered_version]
