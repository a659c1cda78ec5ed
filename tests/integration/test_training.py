"""Every example spec trained end to end through Dagster on a real MLflow SQLite store."""

from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from harness.project import EXAMPLES, materialization_metadata, train, write_spec
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.spec.loader import load_spec
from serving.model.artifact import trusted_types


def test_every_example_trains_registers_and_promotes_the_best(settings, client: MlflowClient):
    # One bento: the step is the same for every model, and each costs 6.5 s of a core.
    result = train(settings, EXAMPLES, bentos=["breast_cancer"])
    assert result.success

    models = [m for path in EXAMPLES for m in load_spec(path).models]
    assert {m.name for m in models} >= {"breast_cancer", "wine", "diabetes", "churn"}
    for model in models:
        experiment = client.get_experiment_by_name(f"mlserve/{model.name}")
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        trials = [r for r in children if "mlserve.final" not in r.data.tags]
        [final] = [r for r in children if "mlserve.final" in r.data.tags]
        assert len(parents) == 1
        # No feedback yet: one trial per candidate, on the base rows.
        assert sorted(r.data.tags["mlserve.candidate"] for r in trials) == sorted(
            c.name for c in model.candidates
        )
        assert {r.data.tags["mlserve.mix"] for r in trials} == {"base"}
        for run in children:
            assert run.data.tags["dagster.run_id"] == result.run_id
            assert run.data.tags["mlserve.data_version"]
            assert run.info.artifact_uri.startswith(settings.artifact_location)
        assert all(model.metric in run.data.metrics for run in trials)

        scores = {r.data.tags["mlserve.candidate"]: r.data.metrics[model.metric] for r in trials}
        pick = max if model.scorer.higher_is_better else min
        best = pick(scores, key=scores.get)

        champion = client.get_model_version_by_alias(model.name, "champion")
        assert champion.run_id == final.info.run_id
        assert champion.tags["mlserve.candidate"] == best == final.data.tags["mlserve.candidate"]
        assert champion.tags["mlserve.gate"] == "passed"
        assert champion.tags["mlserve.metric"] == model.metric
        assert math.isclose(float(champion.tags["mlserve.score"]), scores[best])

        meta = materialization_metadata(result, model.name, "champion")
        assert meta["promoted"] is True
        assert meta["champion_version"] == str(champion.version)
        assert next(iter(meta)) == "decision"  # the UI's first line says what happened
        assert meta["decision"].startswith(f"PROMOTED v{champion.version}: no champion yet")
        if model.name == "breast_cancer":
            bento = materialization_metadata(result, model.name, "bento")
            assert bento["serve"] == (
                f"mlserve serve {model.name}  (or: BENTOML_HOME={settings.bentoml_home} "
                f"bentoml serve {bento['bento']})"
            )
        labels = materialization_metadata(result, model.name, "feedback")["labels"]
        assert labels == "no labels yet"
        if model.description:
            registered = client.get_registered_model(model.name)
            assert registered.description == model.description
        board = materialization_metadata(result, model.name, "candidates")["leaderboard"]
        assert all(c.name in board for c in model.candidates)


def _breast_cancer(candidates: list[dict], threshold: float) -> dict:
    return {
        "name": "bc",
        "source": {"kind": "sklearn", "dataset": "breast_cancer"},
        "target": "target",
        "task": "classification",
        "candidates": candidates,
        "metric": "accuracy",
        "gate": {"threshold": threshold, "min_improvement": 0.0},
    }


STRONG = {
    "name": "scaled_logreg",
    "steps": [
        {"estimator": "sklearn.preprocessing.StandardScaler"},
        {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 1000}},
    ],
}
STUMP = {
    "name": "stump",
    "estimator": "sklearn.tree.DecisionTreeClassifier",
    "params": {"max_depth": 1, "random_state": 0},
}


TREE = {
    "name": "tree",
    "estimator": "sklearn.tree.DecisionTreeClassifier",
    "params": {"random_state": 0},
}


def test_an_overfit_champion_is_replaced_and_worse_challengers_are_held_saying_why(
    settings, client, tmp_path
):
    # One registry through four trainings (each a full Dagster run): a better challenger takes
    # over, then two worse ones are held, each for its own reason.
    # An unpruned tree scores 1.0 on its own training rows: judged there, it would never lose.
    first = write_spec(tmp_path / "tree.yaml", [_breast_cancer([TREE], 0.5)])
    assert train(settings, [first]).success
    both = write_spec(tmp_path / "both.yaml", [_breast_cancer([TREE, STRONG], 0.5)])
    result = train(settings, [both])
    assert result.success
    meta = materialization_metadata(result, "bc", "champion")
    assert meta["promoted"] is True
    assert meta["improvement"] > 0
    assert str(client.get_model_version_by_alias("bc", "champion").version) == "2"
    serving_bento = materialization_metadata(result, "bc", "bento")["bento"]

    # The split the spec declares (defaults: 25% test, seed 0, stratified), computed here.
    frame = load_breast_cancer(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    tree = MlflowRegistry(tracking_uri=settings.mlflow_tracking_uri).load(
        "bc", "1", trusted_types()
    )
    assert meta["champion_metric"] == pytest.approx(accuracy_score(y_test, tree.predict(x_test)))
    assert meta["champion_metric"] < 1.0
    assert meta["base_rows"] == len(y_test)
    assert meta["improvement_low"] > 0

    for threshold, why in ((0.5, "does not beat champion"), (0.95, "below the threshold")):
        worse = write_spec(tmp_path / "worse.yaml", [_breast_cancer([STUMP], threshold)])
        result = train(settings, [worse])
        assert result.success
        assert str(client.get_model_version_by_alias("bc", "champion").version) == "2"
        meta = materialization_metadata(result, "bc", "champion")
        assert meta["promoted"] is False
        assert why in meta["reason"]
        assert meta["champion_version"] == "2"
        assert meta["champion_metric"] > meta["challenger_metric"]
        held = client.get_model_version("bc", meta["challenger_version"])
        assert held.tags["mlserve.gate"] == "held"
        assert why in held.tags["mlserve.gate_reason"]
        # The champion's bento, not a new one of the same version.
        assert materialization_metadata(result, "bc", "bento")["bento"] == serving_bento


def test_an_unchanged_rerun_reuses_the_version_and_decides_nothing(settings, client, tmp_path):
    spec = write_spec(tmp_path / "bc.yaml", [_breast_cancer([STRONG, STUMP], 0.5)])
    assert train(settings, [spec], bentos=()).success
    [first] = client.search_model_versions("name='bc'")
    assert first.tags["mlserve.gate"] == "passed"

    rerun = train(settings, [spec], bentos=())
    assert rerun.success
    registered = materialization_metadata(rerun, "bc", "registered_version")
    assert registered["registered"].startswith(f"reused v{first.version}: same rows, spec")
    assert [v.version for v in client.search_model_versions("name='bc'")] == [first.version]
    decided = materialization_metadata(rerun, "bc", "champion")
    assert decided["decision"].startswith(f"UNCHANGED v{first.version} still serves")
    # Not judged against itself: still passed, so the sensor does not back off.
    assert client.get_model_version("bc", first.version).tags["mlserve.gate"] == "passed"

    # Any change to the spec (here, a candidate's parameter) trains a new version.
    deeper = {**STUMP, "params": {"max_depth": 2, "random_state": 0}}
    changed = _breast_cancer([STRONG, deeper], 0.5)
    assert train(settings, [write_spec(tmp_path / "bc2.yaml", [changed])], bentos=()).success
    assert len(client.search_model_versions("name='bc'")) == 2
