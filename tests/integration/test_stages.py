"""The fast tier: each stage builder's assets materialised on small data, in seconds.

Upstream stages are stood in for by tiny assets with the same keys, so each test exercises one
builder with real resources (a SQLite MLflow store, a SQLite prediction log) and checks what it
made against figures computed here, independently.
"""

from __future__ import annotations

import json
import math
import time
import uuid

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.metrics import accuracy_score
from sklearn.tree import DecisionTreeClassifier

from harness.cli import mlserve
from harness.registries import promote_new_version, register_new_version, tracking_store
from mlserve_assets.assets.data import data_assets
from mlserve_assets.assets.feedback import feedback_assets
from mlserve_assets.assets.keys import ModelAssets
from mlserve_assets.assets.release import release_assets
from mlserve_assets.assets.training import training_assets
from mlserve_assets.ml.split import DatasetSplit
from mlserve_assets.resources.bentos import BentoPackager
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.spec.models import ModelSpec
from serving.http.auth import key_id
from serving.model.artifact import trusted_types
from serving.registry import CHALLENGER, champion_state, connect, move_alias
from serving.store.moves import history
from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionRow

SPEC = {
    "name": "iris",
    "source": {"kind": "sklearn", "dataset": "iris"},
    "target": "target",
    "task": "classification",
    "candidates": [
        {"name": "logreg", "estimator": "sklearn.linear_model.LogisticRegression"},
        {
            "name": "stump",
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "params": {"max_depth": 1},
        },
    ],
    "metric": "accuracy",
    "gate": {"threshold": 0.5},
}
IRIS = load_iris(as_frame=True).frame
FEATURES = [c for c in IRIS.columns if c != "target"]


@pytest.fixture
def model() -> ModelAssets:
    return ModelAssets(ModelSpec.model_validate(SPEC))


@pytest.fixture
def resources(tmp_path) -> dict[str, dg.ConfigurableResource]:
    tracking = tracking_store(tmp_path)
    return {
        "registry": MlflowRegistry(
            tracking_uri=tracking, artifact_location=(tmp_path / "artifacts").as_uri()
        ),
        "prediction_log": PredictionLogResource(url=f"sqlite:///{tmp_path / 'log.db'}"),
    }


def stand_in(model: ModelAssets, stage: str, value: object) -> dg.AssetsDefinition:
    """An upstream stage's asset that just returns ``value``."""

    @dg.asset(key=model.key(stage), group_name=model.name)
    def upstream() -> object:
        return value

    return upstream


def output(result: dg.ExecuteInProcessResult, model: ModelAssets, stage: str) -> object:
    return result.asset_value(model.key(stage))


def test_data_stage_loads_and_checks_the_rows(model):
    result = dg.materialize(data_assets(model))
    assert result.success
    validated = output(result, model, "validated_dataset")
    assert validated.shape == IRIS.shape
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 4 and all(c.passed for c in checks)


def labelled_log(resources, predictions: int, truths: list[int]) -> list[PredictionRow]:
    """``predictions`` of v1 logged (each one 0), the first ones labelled ``truths`` in order."""
    store = PredictionStore(resources["prediction_log"].url)
    store.create_schema()
    rows = [
        PredictionRow(uuid.uuid4().hex, time.time(), "iris", "1", record, 0)
        for record in IRIS[FEATURES].head(predictions).to_dict("records")
    ]
    store.insert_predictions(rows)
    for row, truth in zip(rows, truths, strict=False):
        store.add_feedback("iris", row.prediction_id, truth)
    store.dispose()
    return rows


def test_feedback_stage_joins_labels_and_scores_each_version(model, resources):
    truths = [0, 0, 0, 1, 2, 0, 1, 0]  # 5 of 8 right: the prediction was 0 every time
    rows = labelled_log(resources, 10, truths)
    result = dg.materialize(feedback_assets(model), resources=resources)
    assert result.success
    labelled = output(result, model, "feedback")
    assert sorted(labelled["prediction_id"]) == sorted(r.prediction_id for r in rows[:8])
    meta = result.get_asset_materialization_events()[-1].materialization.metadata
    expected = accuracy_score(truths, [0] * len(truths))
    assert meta["labelled_rows"].value == len(truths)
    assert f"{expected:g}" in meta["live_metrics"].value


def test_feedback_stage_reports_the_champions_live_metric_over_its_latest_window(
    resources, tmp_path
):
    windowed = ModelAssets(ModelSpec.model_validate({**SPEC, "retrain": {"live_window": 40}}))
    client = MlflowClient(resources["registry"].tracking_uri, resources["registry"].tracking_uri)
    client.create_registered_model("iris")
    client.create_model_version("iris", source=(tmp_path / "model").as_uri())
    move_alias(client, resources["prediction_log"].store, "iris", "1", by="test", reason="a test")
    # Right on the 20 oldest labels, then right on 10 of the latest 40: 0.5 over all 60.
    truths = [0] * 20 + [0] * 10 + [1] * 30
    labelled_log(resources, 60, truths)
    result = dg.materialize(feedback_assets(windowed), resources=resources)
    meta = result.get_asset_materialization_events()[-1].materialization.metadata
    expected = accuracy_score(truths[-40:], [0] * 40)
    assert meta["champion_live_accuracy"].value == pytest.approx(expected)


def test_training_stage_fits_logs_ranks_and_registers(model, resources, tmp_path):
    upstream = [
        stand_in(model, "validated_dataset", IRIS),
        stand_in(model, "feedback", pd.DataFrame(columns=[*FEATURES, "target"])),
    ]
    result = dg.materialize([*upstream, *training_assets(model)], resources=resources)
    assert result.success
    split: DatasetSplit = output(result, model, "split")
    assert len(split.base_test) == math.ceil(len(IRIS) * 0.25)  # scikit-learn rounds up
    assert len(split.base_select) == math.ceil((len(IRIS) - len(split.base_test)) * 0.2)
    board = output(result, model, "candidates")
    client = MlflowClient(resources["registry"].tracking_uri)
    runs = client.search_runs(client.get_experiment_by_name("mlserve/iris").experiment_id)
    scores = {
        r.data.tags["mlserve.candidate"]: r.data.metrics["accuracy"]
        for r in runs
        if r.data.tags.get("mlserve.mix") == "base" and "mlserve.final" not in r.data.tags
    }
    assert set(scores) == {"logreg", "stump"}
    assert board.best.name == max(scores, key=scores.get)
    # Scored on the selection rows, which no trial trained on.
    stump = next(r for r in board.results if r.name == "stump")
    assert stump.rows == len(split.base_train)
    version = output(result, model, "registered_version")
    registered = client.get_model_version("iris", version.version)
    assert registered.tags["mlserve.candidate"] == board.best.name
    # Without an MLflow UI address the run is its id; with one, a link to it.
    meta = result.get_asset_materialization_events()[-1].materialization.metadata
    assert meta["mlflow_run"].value == board.model_run_id
    registry = resources["registry"]
    ui = MlflowRegistry(
        tracking_uri=registry.tracking_uri,
        artifact_location=registry.artifact_location,
        ui_url="http://mlflow.example:5000/",
    )
    linked = dg.materialize(
        [*upstream, *training_assets(model)], resources={**resources, "registry": ui}
    )
    meta = linked.get_asset_materialization_events()[-1].materialization.metadata
    experiment = client.get_experiment_by_name("mlserve/iris").experiment_id
    run_id = output(linked, model, "candidates").model_run_id
    assert meta["mlflow_run"] == dg.MetadataValue.url(
        f"http://mlflow.example:5000/#/experiments/{experiment}/runs/{run_id}"
    )
    number = output(linked, model, "registered_version").version
    assert meta["mlflow_version"] == dg.MetadataValue.url(
        f"http://mlflow.example:5000/#/models/iris/versions/{number}"
    )


def test_release_stage_promotes_past_the_gate_and_holds_a_tie(model, resources, tmp_path):
    upstream = [
        stand_in(model, "validated_dataset", IRIS),
        stand_in(model, "feedback", pd.DataFrame(columns=[*FEATURES, "target"])),
    ]
    assets = [*upstream, *training_assets(model), *release_assets(model)]
    champion_only = dg.AssetSelection.all() - dg.AssetSelection.assets(model.key("bento"))
    # The bento step is left out (it builds in a child process; the serving tests package bentos).
    resources = {**resources, "bentos": BentoPackager(bentoml_home=str(tmp_path), tracking_uri="")}
    first = dg.materialize(assets, resources=resources, selection=champion_only)
    assert first.success
    assert output(first, model, "champion") == output(first, model, "registered_version").version
    # The same data and model again (only the description differs, so the version is not
    # reused): the challenger ties the champion, and a tie never moves the alias.
    reworded = ModelAssets(ModelSpec.model_validate({**SPEC, "description": "reworded"}))
    assets = [
        stand_in(reworded, "validated_dataset", IRIS),
        stand_in(reworded, "feedback", pd.DataFrame(columns=[*FEATURES, "target"])),
        *training_assets(reworded),
        *release_assets(reworded),
    ]
    again = dg.materialize(assets, resources=resources, selection=champion_only)
    held = again.get_asset_materialization_events()[-1].materialization.metadata
    assert held["promoted"].value is False
    assert output(again, model, "champion") == output(first, model, "champion")
    challenger = output(again, model, "registered_version").version
    serving = output(first, model, "champion")
    assert next(iter(held)) == "decision"
    assert held["decision"].value.startswith(f"HELD v{challenger} (v{serving} still serves): ")
    split: DatasetSplit = output(again, model, "split")
    client = MlflowClient(resources["registry"].tracking_uri)
    loaded = resources["registry"].load("iris", output(first, model, "champion"), trusted_types())
    expected = accuracy_score(split.base_test.y, loaded.predict(split.base_test.x))
    assert np.isclose(held["champion_metric"].value, expected)
    assert (
        client.get_model_version("iris", output(again, model, "registered_version").version).tags[
            "mlserve.gate"
        ]
        == "held"
    )


def test_a_purged_keys_labels_leave_the_next_trainings_data(model, resources, tmp_path):
    leaked, honest = key_id("a-leaked-feedback-key"), key_id("an-honest-feedback-key")
    url = resources["prediction_log"].url
    store = PredictionStore(url)
    store.create_schema()
    rows = [
        PredictionRow(uuid.uuid4().hex, time.time(), "iris", "1", record, 0)
        for record in IRIS[FEATURES].head(10).to_dict("records")
    ]
    store.insert_predictions(rows)
    for i, row in enumerate(rows):
        store.add_feedback("iris", row.prediction_id, 0, leaked if i % 2 else honest)
    store.dispose()
    env = {
        "MLSERVE_HOME": str(tmp_path / "home"),
        "MLSERVE_PREDICTIONS_URL": url,
        "MLFLOW_TRACKING_URI": resources["registry"].tracking_uri,
    }

    purged = mlserve(["labels", "purge", "--key", leaked, "--reason", "key leaked"], env)
    assert purged.returncode == 0, purged.stderr
    assert "withdrew 5 labels" in purged.stdout
    senders = json.loads(mlserve(["labels", "senders", "--json"], env).stdout)
    assert senders == {
        leaked: {"labels": 0, "withdrawn": 5},
        honest: {"labels": 5, "withdrawn": 0},
    }
    result = dg.materialize(feedback_assets(model), resources=resources)
    training_rows = output(result, model, "feedback")
    assert sorted(training_rows["prediction_id"]) == sorted(r.prediction_id for r in rows[::2])
    again = mlserve(["labels", "purge", "--key", "nobody-at-all", "--reason", "x"], env)
    assert again.returncode == 1 and "no labels were sent by key" in again.stderr


def test_labelled_records_breaking_a_column_rule_neither_train_nor_judge(resources):
    ruled = ModelAssets(
        ModelSpec.model_validate({**SPEC, "columns": {"petal length (cm)": {"max": 7}}})
    )
    labelled = IRIS.sample(20, random_state=0).reset_index(drop=True)
    labelled["prediction_id"] = [uuid.uuid4().hex for _ in range(20)]
    labelled["received_at"] = range(20)
    labelled.loc[:2, "petal length (cm)"] = 50.0  # answered by the service, out of the rule
    upstream = [stand_in(ruled, "validated_dataset", IRIS), stand_in(ruled, "feedback", labelled)]
    result = dg.materialize(
        [*upstream, *training_assets(ruled)],
        resources=resources,
        selection=[ruled.key(stage) for stage in ("validated_dataset", "feedback", "split")],
    )
    split: DatasetSplit = output(result, ruled, "split")
    learned = pd.concat([split.feedback_fit.x, split.feedback_gate.x])
    assert len(learned) == 17 and (learned["petal length (cm)"] <= 7).all()
    meta = result.get_asset_materialization_events()[-1].materialization.metadata
    assert meta["feedback_kept_out"].value == {"petal length (cm)": 3}


def test_a_win_the_interval_cannot_confirm_is_held_and_tried_in_shadow(resources, tmp_path):
    resources = {**resources, "bentos": BentoPackager(bentoml_home=str(tmp_path), tracking_uri="")}

    def release(candidate: dict, description: str) -> dg.ExecuteInProcessResult:
        spec = {**SPEC, "description": description, "candidates": [candidate]}
        model = ModelAssets(ModelSpec.model_validate(spec))
        assets = [
            stand_in(model, "validated_dataset", IRIS),
            stand_in(model, "feedback", pd.DataFrame(columns=[*FEATURES, "target"])),
            *training_assets(model),
            *release_assets(model),
        ]
        selection = dg.AssetSelection.all() - dg.AssetSelection.assets(model.key("bento"))
        return dg.materialize(assets, resources=resources, selection=selection)

    tree = {
        "name": "tree",
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "params": {"max_depth": 2, "random_state": 0},
    }
    first = release(tree, "a shallow tree")
    again = release({"name": "logreg", "estimator": "sklearn.linear_model.LogisticRegression"}, "b")
    held = again.get_asset_materialization_events()[-1].materialization.metadata
    challenger = again.asset_value(
        ModelAssets(ModelSpec.model_validate(SPEC)).key("registered_version")
    ).version
    # Better on the 38 test rows, by too few of them to be sure: held, and tried in shadow.
    assert held["promoted"].value is False and held["improvement"].value > 0
    assert held["decision"].value.endswith(f"v{challenger} is now scored in shadow")
    store = resources["prediction_log"].store
    client = resources["registry"].client
    state = champion_state(client, store, "iris", trust_registry=False, alias=CHALLENGER)
    assert state.vetted == challenger
    [move] = history(store, "iris", alias=CHALLENGER)
    assert move.moved_by.startswith("gate, run") and "lack of evidence" in move.reason
    assert first.success


class RacingLog(PredictionLogResource):
    """The prediction log, with another mover (a shadow promotion, say) moving the champion to
    ``racer`` at the moment the gate, already decided, reads the champion's live metric."""

    racer: str

    def live_metric(self, *args, **kwargs):
        if history(self.store, "iris")[-1].to_version != self.racer:
            move_alias(
                connect(self.tracking), self.store, "iris", self.racer, by="racer", reason="x"
            )
        return super().live_metric(*args, **kwargs)

    tracking: str


def test_a_champion_moved_while_the_gate_judged_is_not_replaced(model, resources, tmp_path):
    registry = resources["registry"]
    rows = IRIS[FEATURES]
    weak = DecisionTreeClassifier(max_depth=1).fit(rows, IRIS["target"])
    judged = promote_new_version(registry, resources["prediction_log"], "iris", weak, rows)
    racer = register_new_version(registry, "iris", weak, rows)
    log = RacingLog(
        url=resources["prediction_log"].url, racer=racer, tracking=registry.tracking_uri
    )
    assets = [
        stand_in(model, "validated_dataset", IRIS),
        stand_in(model, "feedback", pd.DataFrame(columns=[*FEATURES, "target"])),
        *training_assets(model),
        *release_assets(model),
    ]
    champion_only = dg.AssetSelection.all() - dg.AssetSelection.assets(model.key("bento"))
    bentos = BentoPackager(bentoml_home=str(tmp_path), tracking_uri="")
    result = dg.materialize(
        assets,
        resources={**resources, "prediction_log": log, "bentos": bentos},
        selection=champion_only,
    )
    # The logistic regression beats the stump it was judged against, but the champion moved
    # meanwhile: the move is refused, the version held with the reason, the racer's move stands.
    challenger = output(result, model, "registered_version").version
    assert output(result, model, "champion") == racer
    assert [m.to_version for m in history(log.store, "iris")] == [judged, racer]
    tags = registry.client.get_model_version("iris", challenger).tags
    assert tags["mlserve.gate"] == "held"
    assert tags["mlserve.gate_reason"] == (
        f"iris's champion moved to v{racer} since the decision against v{judged}: "
        f"not moved to v{challenger}"
    )
