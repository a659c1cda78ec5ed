"""Real tables: text columns, booleans and gaps train, serve, log, label and retrain without code.

The shipped ``examples/tickets.yaml`` declares only source, target, task, candidates, metric and
gate over ``examples/data/tickets.csv`` (three text columns, a boolean, numbers with gaps, an
imbalanced three-class target). Every column kind and every gap reaches the served model.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from harness.cli import mlserve
from harness.project import AUTH, materialization_metadata, service_env, train, write_spec
from harness.registries import tracking_store
from harness.servers import bentoml_server
from mlserve_assets.ml.validation import training_problems
from mlserve_assets.settings import PROJECT_ROOT, Settings
from mlserve_assets.spec.models import ModelSpec
from serving.model.artifact import trusted_types
from serving.store.predictions import PredictionStore

SPEC = PROJECT_ROOT / "examples/tickets.yaml"
TICKETS = pd.read_csv(PROJECT_ROOT / "examples/data/tickets.csv")
MLSERVE = str(Path(sys.executable).parent / "mlserve")
GAPS = {
    "channel": "fax",  # a category training never saw
    "tier": "pro",
    "product": None,  # a gap in a text column
    "account_age_days": None,  # a gap in a number
    "previous_tickets": 3,
    "business_hours": True,
    "message_words": 120,
}


def _tickets_spec(**changes: object) -> dict:
    spec = yaml.safe_load(SPEC.read_text())["models"][0]
    spec["source"]["path"] = str(PROJECT_ROOT / "examples/data/tickets.csv")
    return {**spec, **changes}


def _train(settings: Settings) -> dg.ExecuteInProcessResult:
    return train(settings, settings.spec_paths, "train_tickets", bentos=())


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Settings, PredictionStore]]:
    root = tmp_path_factory.mktemp("tickets")
    settings = Settings(
        home=root / "home",
        mlflow_tracking_uri=tracking_store(root),
        artifact_location=(root / "artifacts").as_uri(),
        spec_paths=[SPEC],
        predictions_url=f"sqlite:///{root / 'predictions.db'}",
        bentoml_home=root / "bentoml",
    )
    assert _train(settings).success
    env = service_env(settings, "tickets", settings.predictions_url, root / "spool.db")
    with bentoml_server("serving.service:ModelService", env, root / "server.log") as url:
        store = PredictionStore(settings.predictions_url)
        yield url, settings, store
        store.dispose()


def test_the_contract_lists_each_column_with_its_type_and_whether_it_may_be_null(served):
    url, _, _ = served
    features = {f["name"]: f for f in httpx.get(f"{url}/model").json()["features"]}
    nulls = TICKETS.isna().any()
    assert {n: f["nullable"] for n, f in features.items()} == {
        n: bool(nulls[n]) for n in TICKETS.columns if n != "priority"
    }
    assert features["channel"]["type"] == "string"
    assert features["business_hours"]["type"] == "boolean"
    assert features["account_age_days"]["type"] == "double"
    assert features["message_words"]["type"] == "long"


def test_text_gaps_booleans_and_unseen_categories_are_answered_and_logged_unchanged(served):
    url, _, store = served
    records = [GAPS, TICKETS.drop(columns="priority").iloc[0].to_dict()]
    records[1] = {
        k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in records[1].items()
    }
    response = httpx.post(f"{url}/predict", json={"records": records}, timeout=30)
    assert response.status_code == 200, response.text
    for record, answer in zip(records, response.json()["predictions"], strict=True):
        assert answer["prediction"] in {"low", "medium", "high"}
        assert math.isclose(sum(answer["probabilities"].values()), 1.0)
        assert store.prediction(answer["prediction_id"]).features == record


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("tier", 3, "expected text"),
        ("tier", None, "null is not allowed"),  # tier never had a gap
        ("business_hours", "yes", "expected true or false"),
        ("message_words", 3.5, "expected an integer"),
        ("account_age_days", "old", "expected a number"),
    ],
)
def test_a_wrong_type_is_a_422_naming_the_field(served, field, value, problem):
    url, _, _ = served
    response = httpx.post(f"{url}/predict", json={"records": [{**GAPS, field: value}]}, timeout=30)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == field
    assert problem in error["problem"]


def test_labels_on_text_and_gaps_feed_the_next_training(served):
    url, settings, store = served
    rows = TICKETS.sample(120, random_state=3)
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows.drop(columns="priority").to_dict("records")
    ]
    answers = httpx.post(f"{url}/predict", json={"records": records}, timeout=30).json()
    items = [
        {"prediction_id": a["prediction_id"], "ground_truth": truth}
        for a, truth in zip(answers["predictions"], rows["priority"], strict=True)
    ]
    results = httpx.post(
        f"{url}/feedback/batch", json={"feedback": items}, headers=AUTH, timeout=30
    ).json()
    assert {r["status"] for r in results["results"]} == {201}
    labelled = store.labelled("tickets")
    assert any(f["product"] is None for f in labelled["features"])  # gaps round-trip as null

    result = _train(settings)
    assert result.success
    # Each trial is named by its own estimator, not by the preparation Pipeline around it (the
    # arms behind after the first fold are listed as skipped, without one).
    board = materialization_metadata(result, "tickets", "candidates")["leaderboard"]
    named = {"logreg": "LogisticRegression", "boosting": "GradientBoostingClassifier"}
    trials = [
        [cell.strip() for cell in line.split("|")[1:4]]
        for line in board.splitlines()[2:]
        if "skipped" not in line
    ]
    assert len(trials) >= 2, board
    assert all(estimator == named[candidate] for candidate, _, estimator in trials), board
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    newest = max(client.search_model_versions("name='tickets'"), key=lambda v: int(v.version))
    assert int(newest.tags["mlserve.feedback_rows"]) > 0
    assert newest.tags["mlserve.gate"] in ("passed", "held")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"prepare": "none"}, "holds text and StandardScaler takes numbers only"),
        (
            {"prepare": "none", "features": ["account_age_days", "message_words"]},
            "'account_age_days' has 57 missing values and LogisticRegression cannot take them",
        ),
    ],
)
def test_validate_names_the_candidate_and_column_training_would_trip_over(change, words):
    spec = ModelSpec.model_validate(_tickets_spec(**change))
    problems = training_problems(spec, spec.source.load())
    assert any(words in p and "candidate 'logreg'" in p for p in problems), problems


def test_validate_refuses_a_target_with_gaps_and_classes_too_small_to_stratify(tmp_path):
    frame = TICKETS.copy()
    frame.loc[:4, "priority"] = np.nan
    frame.loc[10, "priority"] = "urgent"
    frame.to_csv(tmp_path / "t.csv", index=False)
    source = {"kind": "file", "path": str(tmp_path / "t.csv")}
    refusing = ModelSpec.model_validate(_tickets_spec(source=source, target_missing="error"))
    [gaps] = training_problems(refusing, frame)
    assert "column 'priority': the target has 5 missing values: set target_missing: drop" in gaps
    # By default the rows without a target are left out, and what they leave is judged.
    spec = ModelSpec.model_validate(_tickets_spec(source=source))
    [rare] = training_problems(spec, frame)
    assert "classes {'urgent': 1} have too few rows to stratify" in rare
    assert "split.stratify: false" in rare


def test_cli_validate_and_train_say_what_to_change_in_one_screen(tmp_path):
    spec = write_spec(tmp_path / "tickets.yaml", [_tickets_spec(prepare="none")])
    env = {"MLSERVE_HOME": str(tmp_path / "home"), "MLSERVE_SPECS": str(spec)}

    checked = mlserve(["validate"], env)
    assert checked.returncode == 1
    assert "model 'tickets': candidate 'logreg': column 'channel' holds text" in checked.stderr
    trained = mlserve(["train"], env)
    assert trained.returncode == 1
    out = trained.stdout + trained.stderr
    assert "tickets / candidates failed: ValueError: could not convert string to float" in out
    assert "what to change: a text column reaches a numeric step" in out
    assert "Traceback" not in out and "DEBUG" not in out
    assert len(out.splitlines()) < 25


def test_a_numeric_table_with_gaps_is_imputed_and_served_from_a_float_array(tmp_path):
    from sklearn.datasets import load_wine

    from serving.model.loading import load_version

    frame = load_wine(as_frame=True).frame
    frame.loc[frame.index % 7 == 0, "alcohol"] = np.nan
    # Whole numbers with gaps: an integer column, which pandas reads as floats.
    assert (frame["magnesium"] == frame["magnesium"].round()).all()
    frame.loc[frame.index % 5 == 0, "magnesium"] = np.nan
    frame.to_csv(tmp_path / "wine.csv", index=False)
    spec = write_spec(
        tmp_path / "wine.yaml",
        [
            {
                "name": "tickets",  # the job name the helper runs
                "source": {"kind": "file", "path": str(tmp_path / "wine.csv")},
                "target": "target",
                "task": "classification",
                "candidates": [
                    {"name": "logreg", "estimator": "sklearn.linear_model.LogisticRegression"}
                ],
                "metric": "accuracy",
                "gate": {"threshold": 0.8},
            }
        ],
    )
    uri = tracking_store(tmp_path)
    settings = Settings(
        home=tmp_path / "home",
        mlflow_tracking_uri=uri,
        artifact_location=(tmp_path / "artifacts").as_uri(),
        spec_paths=[spec],
        predictions_url=f"sqlite:///{tmp_path / 'p.db'}",
        bentoml_home=tmp_path / "bentoml",
    )
    assert _train(settings).success
    served = load_version(MlflowClient(uri, uri), "tickets", "1", trusted_types())
    record = frame.drop(columns="target").iloc[3].to_dict()
    matrix, problems = served.check([{**record, "alcohol": None}, record])
    assert problems == []
    assert matrix.dtype == np.float64 and np.isnan(matrix[0, 0])
    labels = served.predict(matrix).labels
    assert set(labels) <= {0, 1, 2}
    # Only the column that had gaps may be null.
    _, refused = served.check([{**record, "malic_acid": None}])
    assert [p.field for p in refused] == ["malic_acid"]
    # The integer column with gaps stays integer: null and 3 pass, 3.5 does not.
    matrix, problems = served.check([{**record, "magnesium": None}, {**record, "magnesium": 3}])
    assert problems == [] and matrix.dtype == np.float64
    _, refused = served.check([{**record, "magnesium": 3.5}])
    assert [p.field for p in refused] == ["magnesium"]
    assert "expected an integer" in refused[0].problem


def test_cli_train_shows_what_a_blocking_check_found(tmp_path):
    frame = TICKETS.copy()
    frame.loc[:3, "priority"] = np.nan
    frame.to_csv(tmp_path / "t.csv", index=False)
    source = {"kind": "file", "path": str(tmp_path / "t.csv")}
    refusing = _tickets_spec(source=source, target_missing="error")
    spec = write_spec(tmp_path / "tickets.yaml", [refusing])
    env = {"MLSERVE_HOME": str(tmp_path / "home"), "MLSERVE_SPECS": str(spec)}
    trained = mlserve(["train"], env)
    assert trained.returncode == 1
    out = trained.stdout + trained.stderr
    assert "tickets / check target_present failed: column 'priority': target has 4 nulls" in out
    assert "what to change: the data broke a rule" in out
