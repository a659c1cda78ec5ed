"""The service under change and failure: database outage, both stores down, champion hot swap
(to a version with other features), the offline bento."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import mlflow
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from harness.logged import logged_ids
from harness.project import AUTH, service_env
from harness.registries import champion_copy, move, register_new_version, registry_copy
from harness.servers import bentoml_server, postgres_cluster
from harness.traffic import Traffic
from mlserve_assets.resources.bentos import BentoPackager
from mlserve_assets.resources.registry import MlflowRegistry
from serving.store.predictions import PredictionStore

RECORDS = load_breast_cancer(as_frame=True).frame.drop(columns="target").to_dict("records")


def _traffic(url: str) -> Traffic:
    return Traffic(url, lambda n: RECORDS[n % len(RECORDS)])


def _spooled(url: str) -> int:
    return httpx.get(f"{url}/model", timeout=10).json()["prediction_log_spooled"]


def test_database_outage_loses_no_answered_prediction(trained, tmp_path):
    with postgres_cluster() as pg:
        db_url = pg.create_database("outage")
        env = service_env(trained, "breast_cancer", db_url, tmp_path / "spool.db")
        with bentoml_server("serving.service:ModelService", env, tmp_path / "server.log") as url:
            with _traffic(url) as traffic:
                traffic.wait_for(50)
                pg.stop()
                during = traffic.count()
                traffic.wait_for(100)
                answered_while_down = traffic.count() - during
                spooled_while_down = _spooled(url)
                pg.start()
                traffic.wait_for(50)
            deadline = time.monotonic() + 60
            while _spooled(url) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _spooled(url) == 0

        assert answered_while_down >= 100
        assert spooled_while_down > 0
        assert traffic.failures == []
        ids = [a["prediction_id"] for a in traffic.answers]
        assert len(set(ids)) == len(ids)
        assert sorted(logged_ids(db_url)) == sorted(
            ids
        )  # every answered prediction, none twice, none extra


def test_a_prediction_spooled_in_an_outage_survives_a_shutdown_and_takes_its_label_later(
    trained, tmp_path
):
    spool = tmp_path / "spool.db"
    with postgres_cluster() as pg:
        db_url = pg.create_database("shutdown")
        env = service_env(trained, "breast_cancer", db_url, spool)
        label = {"ground_truth": 1}
        with bentoml_server("serving.service:ModelService", env, tmp_path / "first.log") as url:
            pg.stop()
            one = {"records": RECORDS[:1]}
            answer = httpx.post(f"{url}/predict", json=one, timeout=30).json()["predictions"][0]
            label["prediction_id"] = answer["prediction_id"]
            early = httpx.post(f"{url}/feedback", json=label, headers=AUTH, timeout=60)
        kept = PredictionStore(f"sqlite:///{spool}")
        kept_through_shutdown = kept.count_predictions()  # the database still away at the end
        kept.dispose()
        pg.start()
        with bentoml_server("serving.service:ModelService", env, tmp_path / "second.log") as url:
            deadline = time.monotonic() + 60
            while _spooled(url) and time.monotonic() < deadline:
                time.sleep(0.2)
            late = httpx.post(f"{url}/feedback", json=label, headers=AUTH, timeout=60)
        store = PredictionStore(db_url)
        labelled = store.labelled("breast_cancer")
        store.dispose()

    assert kept_through_shutdown == 1
    assert early.status_code == 503 and early.headers["Retry-After"] == "5"
    assert late.status_code == 201, late.text
    assert labelled["prediction_id"].tolist() == [label["prediction_id"]]


def _status(url: str, path: str, **kwargs) -> int:
    method = httpx.get if path == "/readyz" else httpx.post
    return method(f"{url}{path}", headers=AUTH, timeout=60, **kwargs).status_code


def _wait_for_status(url: str, path: str, status: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (got := _status(url, path)) != status:
        assert time.monotonic() < deadline, f"{path} stayed {got}, wanted {status}"
        time.sleep(0.2)


def test_with_both_stores_down_nothing_is_answered_or_kept_and_readiness_says_so(trained, tmp_path):
    spool = tmp_path / "spool.db"
    with postgres_cluster() as pg:
        db_url = pg.create_database("down")
        env = service_env(trained, "breast_cancer", db_url, spool)
        with bentoml_server("serving.service:ModelService", env, tmp_path / "server.log") as url:
            one = {"records": RECORDS[:1]}
            first = httpx.post(f"{url}/predict", json=one, timeout=30).json()["predictions"]
            assert _status(url, "/readyz") == 200

            pg.stop()
            lock = sqlite3.connect(spool, isolation_level=None, timeout=30)
            lock.execute("BEGIN EXCLUSIVE")  # the spool takes no write either
            try:
                _wait_for_status(url, "/readyz", 503)
                refused = httpx.post(f"{url}/predict", json=one, timeout=60)
                label = {"prediction_id": first[0]["prediction_id"], "ground_truth": 1}
                single = _status(url, "/feedback", json=label)
                batch = httpx.post(
                    f"{url}/feedback/batch", json={"feedback": [label]}, headers=AUTH, timeout=60
                )
            finally:
                lock.close()
            _wait_for_status(url, "/readyz", 200)  # the spool is back: ready on it alone
            spooled = httpx.post(f"{url}/predict", json=one, timeout=30).json()["predictions"]
            pg.start()
            deadline = time.monotonic() + 60
            while _spooled(url) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _spooled(url) == 0

        assert refused.status_code == 503
        assert refused.json()["errors"][0]["problem"] == "prediction log unavailable, retry later"
        assert (single, batch.status_code) == (503, 503)
        assert batch.json()["errors"][0]["record"] == 0
        store = PredictionStore(db_url)
        answered = [first[0]["prediction_id"], spooled[0]["prediction_id"]]
        assert sorted(logged_ids(db_url)) == sorted(answered)  # the refused one is nowhere
        assert store.labelled("breast_cancer").empty
        store.dispose()
        assert PredictionStore(f"sqlite:///{spool}").count_predictions() == 0


def test_moving_the_champion_alias_swaps_the_served_version(trained, tmp_path):
    uri = registry_copy(trained, tmp_path)
    old, new = champion_copy(uri, "breast_cancer")
    log_url = f"sqlite:///{tmp_path / 'p.db'}"
    env = {
        **service_env(trained, "breast_cancer", log_url, tmp_path / "s.db"),
        "MLFLOW_TRACKING_URI": uri,
    }
    with bentoml_server("serving.service:ModelService", env, tmp_path / "server.log") as url:
        with _traffic(url) as traffic:
            traffic.wait_for(20)
            assert {a["model_version"] for a in traffic.answers} == {str(old.version)}

            move(uri, log_url, "breast_cancer", new.version)
            swapped_at = traffic.count()
            deadline = time.monotonic() + 10  # poll interval is 1 s
            while traffic.answers[-1]["model_version"] != str(new.version):
                assert time.monotonic() < deadline, "service did not swap to the new champion"
                time.sleep(0.05)
            traffic.wait_for(20)
            after = traffic.answers[-10:]

            move(uri, log_url, "breast_cancer", old.version)
            deadline = time.monotonic() + 10
            while traffic.answers[-1]["model_version"] != str(old.version):
                assert time.monotonic() < deadline, "rollback did not reach the service"
                time.sleep(0.05)
        info = httpx.get(f"{url}/model", timeout=10).json()

    assert traffic.failures == []
    assert {a["model_version"] for a in after} == {str(new.version)}
    versions = [a["model_version"] for a in traffic.answers[swapped_at:]]
    assert str(new.version) in versions
    assert info["version"] == str(old.version)


def _register_narrow_version(uri: str, features: list[str], artifacts: Path) -> str:
    """A breast_cancer version over fewer features, logged as mlserve logs one."""
    frame = load_breast_cancer(as_frame=True).frame
    x, y = frame[features], frame["target"]
    estimator = LogisticRegression(max_iter=1000).fit(x, y)
    with MlflowRegistry(tracking_uri=uri).fluent_api():
        experiment = MlflowClient(uri, uri).create_experiment("narrow", artifacts.as_uri())
        mlflow.set_experiment(experiment_id=experiment)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                signature=infer_signature(x, estimator.predict(x)),
                input_example=x.head(2),
                registered_model_name="breast_cancer",
                pip_requirements=[],
            )
    return str(info.registered_model_version)


def test_after_a_swap_to_other_features_the_document_shows_them(trained, tmp_path):
    uri = registry_copy(trained, tmp_path)
    narrow = ["mean radius", "mean texture", "mean area"]
    version = _register_narrow_version(uri, narrow, tmp_path / "artifacts")
    log_url = f"sqlite:///{tmp_path / 'p.db'}"
    env = {
        **service_env(trained, "breast_cancer", log_url, tmp_path / "s.db"),
        "MLFLOW_TRACKING_URI": uri,
        # Only the reload swaps: a poll between the move and the reload made it "unchanged"
        # (seen once with three workers on two cores).
        "MLSERVE_POLL_SECONDS": "0",
    }
    with bentoml_server("serving.service:ModelService", env, tmp_path / "server.log") as url:
        before = httpx.get(f"{url}/openapi.json", timeout=30).json()
        move(uri, log_url, "breast_cancer", version)
        reload = httpx.post(f"{url}/admin/reload", headers=AUTH, timeout=60).json()
        after = httpx.get(f"{url}/openapi.json", timeout=30).json()
        page = httpx.get(f"{url}/docs", timeout=30).text
        old_record = {"records": RECORDS[:1]}
        refused = httpx.post(f"{url}/predict", json=old_record, timeout=30)

    assert reload == {"name": "breast_cancer", "version": version, "changed": True, "refused": None}
    assert len(before["components"]["schemas"]["Record"]["properties"]) == 30
    record = after["components"]["schemas"]["Record"]
    assert list(record["properties"]) == narrow
    assert record["examples"][0] == {f: RECORDS[0][f] for f in narrow}
    assert after["info"]["title"] == f"mlserve: breast_cancer v{version}"
    assert f"mlserve: breast_cancer v{version}" in page
    assert refused.status_code == 422  # the old signature's extra features are now refused
    assert "unexpected field" in refused.text


def test_the_built_bento_serves_without_mlflow(trained, tmp_path):
    champion = MlflowClient(
        trained.mlflow_tracking_uri, trained.mlflow_tracking_uri
    ).get_model_version_by_alias("breast_cancer", "champion")
    packager = BentoPackager(
        bentoml_home=str(trained.bentoml_home), tracking_uri=trained.mlflow_tracking_uri
    )
    built = packager.build("breast_cancer", str(champion.version), [])
    env = {
        "MLSERVE_HOME": str(tmp_path),
        "BENTOML_HOME": str(trained.bentoml_home),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # nothing listens: start-up must not need it
        "MLSERVE_POLL_SECONDS": "0",
    }
    with bentoml_server(built["bento"], env, tmp_path / "bento.log") as url:
        response = httpx.post(f"{url}/predict", json={"records": RECORDS[:3]}, timeout=30)
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    assert [a["model_version"] for a in answers] == [str(champion.version)] * 3
    assert PredictionStore(f"sqlite:///{tmp_path / 'predictions.db'}").count_predictions() == 3


def test_a_swap_between_a_twin_and_scikit_learn_answers_alike_and_loses_nothing(trained, tmp_path):
    # The same 200-tree forest twice: one version with its verified ONNX twin, one without.
    uri = registry_copy(trained, tmp_path)
    registry = MlflowRegistry(tracking_uri=uri)
    cancer = load_breast_cancer(as_frame=True)
    forest = RandomForestClassifier(200, random_state=0).fit(cancer.data, cancer.target)
    held_out = cancer.data.iloc[::3]
    twin = register_new_version(registry, "breast_cancer", forest, cancer.data, held_out)
    plain = register_new_version(registry, "breast_cancer", forest, cancer.data)
    log_url = f"sqlite:///{tmp_path / 'p.db'}"
    env = {
        **service_env(trained, "breast_cancer", log_url, tmp_path / "s.db"),
        "MLFLOW_TRACKING_URI": uri,
    }
    batch = {"records": held_out.head(50).to_dict("records")}

    def serving(http: httpx.Client, url: str, version: str) -> bool:
        return http.get(f"{url}/model").json()["version"] == version

    with (
        bentoml_server("serving.service:ModelService", env, tmp_path / "server.log") as url,
        httpx.Client(timeout=30) as http,
    ):
        move(uri, log_url, "breast_cancer", twin)  # once the service made its tables
        _until(lambda: serving(http, url, twin), "the twin served")
        assert http.get(f"{url}/model").json()["runtime"] == "onnx"
        by_twin = http.post(f"{url}/predict", json=batch).json()["predictions"]
        with _traffic(url) as traffic:
            traffic.wait_for(20)
            move(uri, log_url, "breast_cancer", plain)
            _until(lambda: serving(http, url, plain), "the swap to scikit-learn")
            traffic.wait_for(20)
            by_sklearn = http.post(f"{url}/predict", json=batch).json()["predictions"]
            assert http.get(f"{url}/model").json()["runtime"] == "scikit-learn"
            move(uri, log_url, "breast_cancer", twin)
            _until(lambda: serving(http, url, twin), "the swap back to the twin")
            traffic.wait_for(20)
        runtime = http.get(f"{url}/metrics").text

    assert traffic.failures == []
    assert 'mlserve_served_runtime{model="breast_cancer",runtime="onnx"} 1.0' in runtime
    # Answered alike: the same classes, the same probability keys, values within 1e-4.
    assert [a["prediction"] for a in by_twin] == [a["prediction"] for a in by_sklearn]
    for ours, theirs in zip(by_twin, by_sklearn, strict=True):
        assert ours["probabilities"].keys() == theirs["probabilities"].keys()
        gap = max(abs(v - theirs["probabilities"][k]) for k, v in ours["probabilities"].items())
        assert gap <= 1e-4
    # Nothing lost, nothing doubled, across both swaps.
    answered = [a["prediction_id"] for a in (*traffic.answers, *by_twin, *by_sklearn)]
    assert sorted(logged_ids(log_url)) == sorted(answered)
    versions = {a["model_version"] for a in traffic.answers}
    assert versions == {twin, plain}


def _until(done, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} after {timeout} s"
        time.sleep(0.1)
