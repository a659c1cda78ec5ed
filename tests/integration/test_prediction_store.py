"""The prediction store's batched insert, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace

import pytest
import sqlalchemy as sa
from mlflow.exceptions import MlflowException
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from harness.registries import promote_new_version, register_new_version, registry_at
from harness.servers import Postgres
from mlserve_assets.resources.predictions import PredictionLogResource
from serving.registry import champion, move_alias
from serving.store import moves, shadow
from serving.store.ids import new_batch_id, prediction_id
from serving.store.moves import Move, history
from serving.store.predictions import PredictionStore
from serving.store.shadow import ShadowRow
from serving.store.tables import PredictionBatch, PredictionRow


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[PredictionStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'predictions.db'}"
    else:
        cluster: Postgres = request.getfixturevalue("postgres")
        url = cluster.create_database(f"store_{uuid.uuid4().hex[:12]}")
    store = PredictionStore(url, log_writer=True)
    store.create_schema()
    yield store
    store.dispose()


def _rows(count: int) -> list[PredictionRow]:
    """Rows of every shape the service logs: labels of several types, scores or none, and text
    that SQL literals and COPY's text format both need escaped."""
    labels = itertools.cycle([1, "yes", 2.5, None, True])
    return [
        PredictionRow(
            prediction_id=uuid.uuid4().hex,
            created_at=1_700_000_000.0 + i,
            model_name="m",
            model_version=str(1 + i % 3),
            features={"a": i * 0.1, "b": -i, "c": 'it\'s "quoted" %s ? \\N back\\slash\t\n\r'},
            prediction=next(labels),
            probabilities={"no": 0.25, "yes": 0.75} if i % 2 else None,
        )
        for i in range(count)
    ]


def test_batches_across_statement_chunks_round_trip_exactly(store: PredictionStore):
    rows = _rows(2500)  # more than one multi-row statement on PostgreSQL
    store.insert_predictions(rows)
    assert store.count_predictions() == 2500
    for row in rows[:5] + rows[995:1005] + rows[-5:]:
        assert store.prediction(row.prediction_id) == row


def test_a_replayed_batch_lands_once(store: PredictionStore):
    rows = _rows(1500)
    store.insert_predictions(rows[:1200])
    store.insert_predictions(rows[900:] + rows[900:910])  # overlap, and repeats inside a batch
    assert store.count_predictions() == 1500
    assert store.versions_served("m") == {"1": 500, "2": 500, "3": 500}


def test_a_copy_commits_by_itself_on_an_idle_connection_or_with_the_transaction_it_is_in(
    postgres: Postgres,
):
    url = postgres.create_database(f"store_{uuid.uuid4().hex[:12]}")
    store = PredictionStore(url, log_writer=True)
    store.create_schema()
    first, second = (PredictionBatch.of(row).logged() for row in _rows(2))
    elsewhere = sa.create_engine(url)
    logged = sa.text("SELECT count(*) FROM prediction_batches")
    try:
        with store.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            store.insert_on(conn, [first])
            # Committed, and the connection left as it was found: idle, not in autocommit.
            assert not raw.autocommit
            assert raw.get_transaction_status() == TRANSACTION_STATUS_IDLE
            with elsewhere.connect() as other:
                assert other.execute(logged).scalar_one() == 1
            # A transaction the caller opened takes the COPY in, and commits with it.
            raw.cursor().execute("CREATE TABLE opened_by_the_caller (x int)")
            store.insert_on(conn, [second])
        with elsewhere.connect() as other:
            assert other.execute(logged).scalar_one() == 2
            created = sa.text("SELECT to_regclass('opened_by_the_caller') IS NOT NULL")
            assert other.execute(created).scalar_one()  # the caller's statement, committed too
    finally:
        elsewhere.dispose()
        store.dispose()


def _label_all(store: PredictionStore, rows: list[PredictionRow]) -> None:
    """Label every row with its own prediction, one at a time, oldest first."""
    for row in rows:
        store.add_feedback(row.model_name, row.prediction_id, row.prediction)


def test_outcomes_are_one_versions_newest_labels(store: PredictionStore):
    rows = _rows(30)
    store.insert_predictions(rows)
    _label_all(store, rows)
    version_2 = [row for row in rows if row.model_version == "2"]
    newest = store.outcomes("m", "2", latest=4)
    assert newest["prediction"].tolist() == [row.prediction for row in reversed(version_2)][:4]
    assert set(newest["model_version"]) == {"2"}
    assert len(store.outcomes("m", "2")) == len(version_2) == 10


def test_a_request_is_one_row_and_each_of_its_records_is_found_by_its_id(store):
    rows = _rows(7)
    batch = PredictionBatch(
        new_batch_id(),
        rows[0].created_at,
        "m",
        "2",
        [r.features for r in rows],
        [r.prediction for r in rows],
        [r.probabilities or {} for r in rows],
        [None, ["a below 0"], None, None, None, None, None],
    )
    store.insert_batches([batch, batch])  # the same batch again: a replay
    assert store.count_predictions() == 7 and len(store.oldest_batches(10)) == 1
    assert store.versions_served("m") == {"2": 7}
    found = [store.prediction(pid) for pid in batch.prediction_ids]
    assert [(r.features, r.prediction) for r in found] == [(r.features, r.prediction) for r in rows]
    assert found[1].violations == ["a below 0"] and found[0].violations is None
    assert store.prediction(prediction_id(batch.batch_id, 7)) is None  # past its last record


def test_a_log_written_a_row_per_record_is_batched_in_place(store: PredictionStore):
    rows = _rows(12)
    theirs = [replace(row, model_name="other") for row in _rows(3)]
    with store.engine.begin() as conn:  # the tables as releases before batches made them
        conn.exec_driver_sql("DROP TABLE feedback")
        conn.exec_driver_sql("DROP TABLE prediction_batches")
        conn.exec_driver_sql(
            "CREATE TABLE predictions (prediction_id VARCHAR(36) PRIMARY KEY, "
            "created_at FLOAT NOT NULL, model_name VARCHAR(128) NOT NULL, "
            "model_version VARCHAR(32) NOT NULL, features JSON NOT NULL, "
            "prediction JSON NOT NULL, probabilities JSON)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE feedback (prediction_id VARCHAR(36) PRIMARY KEY "
            "REFERENCES predictions (prediction_id), ground_truth JSON NOT NULL, "
            "received_at FLOAT NOT NULL)"
        )
        for at, row in enumerate(rows + theirs):
            values = asdict(row) | {
                "features": json.dumps(row.features),
                "prediction": json.dumps(row.prediction),
                "probabilities": row.probabilities and json.dumps(row.probabilities),
            }
            conn.execute(
                sa.text(
                    "INSERT INTO predictions VALUES (:prediction_id, :created_at, :model_name, "
                    ":model_version, :features, :prediction, :probabilities)"
                ),
                values,
            )
            conn.execute(
                sa.text("INSERT INTO feedback VALUES (:id, :truth, :at)"),
                {"id": row.prediction_id, "truth": json.dumps(row.prediction), "at": at},
            )
    store.create_schema()
    store.create_schema()  # a second process starting on the upgraded log changes nothing
    assert not sa.inspect(store.engine).has_table("predictions")
    assert store.count_predictions() == 15 and len(store.oldest_batches(20)) == 15
    assert [store.prediction(row.prediction_id) for row in rows + theirs] == rows + theirs
    assert store.labelled_since("m", 5.5) == (6, 6.0, 11.0)  # rows 6..11 of m
    assert store.labelled_since("other", 11.5) == (3, 12.0, 14.0)
    outcomes = store.outcomes("m", "1")
    assert outcomes["prediction"].tolist() == [row.prediction for row in rows[::3]][::-1]
    labelled = store.labelled("m")
    assert labelled["features"].tolist() == [row.features for row in rows]
    assert labelled["created_at"].tolist() == [row.created_at for row in rows]
    fresh = _rows(1)
    store.insert_predictions(fresh)
    _label_all(store, fresh)  # the labels' old foreign key went with the old table
    assert store.labelled_since("m", 14.5).count == 1


def test_a_move_is_recorded_with_the_alias_or_not_at_all(postgres, tmp_path):
    registry, _ = registry_at(tmp_path)
    url = postgres.create_database("moves")
    log = PredictionLogResource(url=url)
    data = load_breast_cancer(as_frame=True)
    rows = data.data.iloc[:, :3]
    first = promote_new_version(
        registry, log, "bc", LogisticRegression().fit(rows, data.target), rows
    )
    second = register_new_version(
        registry, "bc", LogisticRegression(C=0.1).fit(rows, data.target), rows
    )
    client, store = registry.client, log.store

    # The alias call fails (no such version): no row is left behind.
    with pytest.raises(MlflowException):
        move_alias(client, store, "bc", "99", by="test", reason="a version that is not there")
    # The record fails at commit (a deferred trigger refuses it): the alias is put back.
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$"
        )
        conn.exec_driver_sql(
            "CREATE CONSTRAINT TRIGGER refuse_moves AFTER INSERT ON champion_moves "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    with pytest.raises(sa.exc.SQLAlchemyError, match="refused at commit"):
        move_alias(client, store, "bc", second, by="test", reason="its record cannot commit")

    assert str(champion(client, "bc").version) == first
    assert [(m.from_version, m.to_version) for m in history(store, "bc")] == [(None, first)]
    log.store.dispose()


def test_shadow_evidence_counts_from_the_newest_move_of_either_alias(store):
    # Answers of a challenger's earlier trial judged another pairing: a new move of either alias
    # starts the evidence afresh, so a challenger shadowed again is judged on new traffic only.
    answered = [replace(r, model_name="m", model_version="1") for r in _rows(6)]
    answered = [replace(r, created_at=float(10 * i)) for i, r in enumerate(answered)]
    store.insert_predictions(answered)
    shadow.insert(
        store,
        [ShadowRow(r.prediction_id, "2", "m", r.created_at, r.prediction) for r in answered],
    )
    for row in answered:
        store.add_feedback("m", row.prediction_id, row.prediction)

    def moved(alias: str, at: float) -> None:
        with moves.recording(store, Move("m", None, "2", at, "test", "x", {}), alias):
            pass

    moved("champion", 5.0)
    moved("challenger", 15.0)
    assert shadow.pairing_start(store, "m") == 15.0
    start = shadow.pairing_start(store, "m")
    assert len(shadow.outcomes(store, "m", "2", since=start)) == 4  # answered at 20..50
    moved("challenger", 35.0)  # the same challenger, shadowed again
    later = shadow.outcomes(store, "m", "2", since=shadow.pairing_start(store, "m"))
    assert sorted(later["prediction"].tolist()) == sorted(r.prediction for r in answered[4:])


def test_of_two_movers_judging_against_the_same_champion_only_the_first_moves(store):
    # The gate and the shadow sensor can decide at once against the same champion; the second
    # must find its decision stale, even while the first is still between its record and commit.
    def move(to: str, replacing: str | None, hold: float = 0.0) -> None:
        with moves.recording(
            store, Move("m", None, to, time.time(), "t", "x", {}), "champion", replacing
        ):
            time.sleep(hold)

    move("1", replacing=None)
    with pytest.raises(moves.StaleMove, match="moved to v1 since the decision against none"):
        move("2", replacing=None)
    outcomes: dict[str, str] = {}

    def racer(to: str, hold: float) -> None:
        try:
            move(to, replacing="1", hold=hold)
            outcomes[to] = "moved"
        except moves.StaleMove:
            outcomes[to] = "stale"

    first = threading.Thread(target=racer, args=("2", 0.5))
    first.start()
    time.sleep(0.1)  # the first holds the lock between its record and its commit
    racer("3", 0.0)
    first.join()
    assert outcomes == {"2": "moved", "3": "stale"}
    assert [m.to_version for m in history(store, "m")] == ["1", "2"]
    move("4", replacing=...)  # an operator's move: whatever serves
    assert moves.latest(store, "m") == "4"


def test_labels_in_batches_across_chunks_match_labels_sent_one_at_a_time(store: PredictionStore):
    rows = _rows(1300)  # past one statement's chunk of ids
    store.insert_predictions(rows)
    other = [replace(row, prediction_id=uuid.uuid4().hex, model_name="o") for row in rows[:5]]
    store.insert_predictions(other)
    store.add_feedback("m", rows[0].prediction_id, "earlier")
    labels = [(row.prediction_id, row.prediction) for row in rows]
    labels += [(rows[1].prediction_id, rows[1].prediction), (rows[2].prediction_id, "changed")]
    labels += [(row.prediction_id, 1) for row in other] + [(uuid.uuid4().hex, 1)]
    outcomes = store.add_labels("m", labels, "k")
    kinds = [type(o).__name__ for o in outcomes]
    # Independently: what each label is, by the rules, given what came before it.
    expected = ["DuplicateFeedbackError"] + ["Labelled"] * 1299 + ["Labelled"]
    expected += ["DuplicateFeedbackError"] + ["UnknownPredictionError"] * 6
    assert kinds == expected
    assert [o.new for o in outcomes[1:1301]] == [True] * 1299 + [False]
    assert [o.model_version for o in outcomes[1:1300]] == [r.model_version for r in rows[1:]]
    assert store.labelled_since("m", 0).count == 1300
    stored = store.labelled("m").set_index("prediction_id")["key_id"]
    assert stored[rows[0].prediction_id] is None and stored[rows[-1].prediction_id] == "k"


def test_two_batches_racing_for_the_same_labels_store_each_once(store: PredictionStore):
    rows = _rows(400)
    store.insert_predictions(rows)
    labels = [(row.prediction_id, row.prediction) for row in rows]
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: store.add_labels("m", labels, "k"), range(2)))
    new = [a.new + b.new for a, b in zip(*both, strict=True)]
    assert new == [1] * 400  # each label new for exactly one of the two
    assert store.labelled_since("m", 0).count == 400
