"""Bad data fails a blocking check naming column and rule, and nothing downstream runs."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from harness.cli import mlserve
from harness.project import materialization_metadata, train, write_spec
from mlserve_assets.resources.registry import MlflowRegistry
from serving.model.artifact import trusted_types


def _rows(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    return pd.DataFrame(
        {
            "x1": x[:, 0],
            "x2": x[:, 1],
            "age": rng.integers(18, 90, n),
            "y": (x[:, 0] > 0).astype(int),
        }
    )


def _spread_nulls(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(float)
    frame.loc[::10, column] = np.nan
    return frame


CASES = [
    ("target_present", "classification needs at least 2 classes", lambda f: f.assign(y=1)),
    ("no_all_null_columns", "column 'x2': every value is null", lambda f: f.assign(x2=np.nan)),
    ("column_rules_hold", "column 'age': rule max=100", lambda f: f.assign(age=f["age"] + 50)),
    ("column_rules_hold", "column 'age': rule min=0", lambda f: f.assign(age=-f["age"])),
    ("column_rules_hold", "column 'x1': rule dtype=numeric", lambda f: f.assign(x1="high")),
    ("column_rules_hold", "column 'age': rule dtype=integer", lambda f: f.assign(age=f.age + 0.5)),
    ("column_rules_hold", "column 'x1': rule nullable=false", lambda f: _spread_nulls(f, "x1")),
    ("column_rules_hold", "column 'y': rule allowed=[0, 1]", lambda f: f.assign(y=f["y"] + 1)),
]


def _model(source: dict, target: str = "y") -> dict:
    return {
        "name": "toy",
        "source": source,
        "target": target,
        "task": "classification",
        "candidates": [{"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}],
        "metric": "accuracy",
        "gate": {"threshold": 0.5},
        "columns": {
            "age": {"dtype": "integer", "min": 0, "max": 100},
            "x1": {"dtype": "numeric", "nullable": False},
            "y": {"allowed": [0, 1]},
        },
    }


def _assert_blocked(result, check: str, words: str, client) -> None:
    assert not result.success
    evaluations = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    failed = evaluations[check]
    assert not failed.passed
    assert words in failed.description
    # Stopped by the blocking check before it started, not crashed in it: a check that did not
    # block would let split run and fail on the bad rows.
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "toy__split" not in started, started
    materialized = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    assert ("toy", "split") not in materialized
    assert ("toy", "candidates") not in materialized
    assert client.get_experiment_by_name("mlserve/toy") is None


@pytest.mark.parametrize(("check", "words", "spoil"), CASES, ids=[c[1] for c in CASES])
def test_bad_csv_is_stopped_by_a_blocking_check(settings, client, tmp_path, check, words, spoil):
    csv = tmp_path / "toy.csv"
    spoil(_rows()).to_csv(csv, index=False)
    spec = write_spec(tmp_path / "toy.yaml", [_model({"kind": "file", "path": "toy.csv"})])
    _assert_blocked(train(settings, [spec], bentos=()), check, words, client)


def test_sql_source_missing_its_target_is_stopped(settings, client, tmp_path):
    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as conn:
        _rows().drop(columns="y").to_sql("events", conn, index=False)
    source = {"kind": "sql", "url": f"sqlite:///{db}", "query": "select * from events"}
    spec = write_spec(tmp_path / "toy.yaml", [_model(source)])
    result = train(settings, [spec], bentos=())
    _assert_blocked(result, "schema_matches", "column 'y': required by the spec", client)
    _assert_blocked(result, "target_present", "column 'y': target column is missing", client)


def test_sql_source_with_good_rows_trains(settings, client, tmp_path, monkeypatch):
    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as conn:
        _rows().to_sql("events", conn, index=False)
    monkeypatch.setenv("TOY_DB", f"sqlite:///{db}")
    source = {"kind": "sql", "url_env": "TOY_DB", "query": "select x1, x2, age, y from events"}
    spec = write_spec(tmp_path / "toy.yaml", [_model(source)])
    assert train(settings, [spec], bentos=()).success
    assert client.get_model_version_by_alias("toy", "champion") is not None


def test_rows_without_a_target_are_left_out_and_counted(settings, client, tmp_path):
    frame = _spread_nulls(_rows(), "y")  # the class column read as floats, with gaps
    csv = tmp_path / "toy.csv"
    frame.to_csv(csv, index=False)
    unlabelled = int(frame["y"].isna().sum())
    spec = write_spec(tmp_path / "toy.yaml", [_model({"kind": "file", "path": "toy.csv"})])

    said = mlserve(["validate", str(spec)], {})
    assert said.returncode == 0, said.stderr
    assert f"{unlabelled} of {len(frame)} rows have no target and are left out" in said.stdout

    result = train(settings, [spec], bentos=())
    assert result.success
    validated = materialization_metadata(result, "toy", "validated_dataset")
    assert validated["unlabelled_rows_left_out"] == unlabelled
    assert validated["rows"] == len(frame) - unlabelled
    # The classes are the source's integers, not the floats a column with gaps is read as.
    registry = MlflowRegistry(tracking_uri=settings.mlflow_tracking_uri)
    model = registry.load("toy", "1", trusted_types())
    assert sorted(model.classes_.tolist()) == [0, 1]
    assert all(type(c) is int for c in model.classes_.tolist())
    # And the train summary says so, as a user runs it.
    env = {"MLSERVE_HOME": str(tmp_path / "cli-home"), "MLSERVE_SPECS": str(spec)}
    trained = mlserve(["train"], env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    summary = f"toy: {unlabelled} rows without a target left out (target_missing: drop)"
    assert summary in trained.stdout


def test_target_missing_error_refuses_rows_without_a_target(settings, client, tmp_path):
    frame = _spread_nulls(_rows(), "y")
    frame.to_csv(tmp_path / "toy.csv", index=False)
    unlabelled = int(frame["y"].isna().sum())
    refusing = {**_model({"kind": "file", "path": "toy.csv"}), "target_missing": "error"}
    spec = write_spec(tmp_path / "refusing.yaml", [refusing])
    said = mlserve(["validate", str(spec)], {})
    assert said.returncode == 1
    assert f"the target has {unlabelled} missing values: set target_missing: drop" in said.stderr
    blocked = train(settings, [spec], bentos=())
    _assert_blocked(blocked, "target_present", f"column 'y': target has {unlabelled} nulls", client)
