"""Labels stored a batch at a time: each item's own answer, and a spooled prediction a 503 to
retry, not a final 404."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
from sklearn.linear_model import LogisticRegression

from serving.feedback_intake import FeedbackIntake
from serving.http.app import running_service
from serving.http.bodies import Feedback
from serving.model.fields import Feature
from serving.model.served import ServedModel
from serving.store.ids import new_prediction_id
from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionBatch, PredictionRow


def _stores(folder) -> tuple[PredictionStore, PredictionStore]:
    """The prediction database and the spool, empty."""
    stores = tuple(PredictionStore(f"sqlite:///{folder / n}") for n in ("log.db", "spool.db"))
    for store in stores:
        store.create_schema()
    return stores


def _intake(database: PredictionStore, spool: object) -> tuple[ServedModel, FeedbackIntake]:
    """A served model ``m`` and the intake of its labels over ``database`` and ``spool``."""
    service = running_service()  # its metrics: Prometheus takes each name once per process
    estimator = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
    model = ServedModel("m", "1", "", None, None, estimator, [Feature("x", "double", True)])
    log = SimpleNamespace(spool=spool)  # what the intake asks of the prediction log
    return model, FeedbackIntake(database, service.metrics, service.config, log)


def test_feedback_for_a_spooled_prediction_is_503_until_it_reaches_the_log(served, tmp_path):
    database, spool = _stores(tmp_path)
    model, intake = _intake(database, spool)
    row = PredictionRow(new_prediction_id(), time.time(), "m", "1", {"x": 1.0}, 1)
    spool.insert_predictions([row])
    label = Feedback(prediction_id=row.prediction_id, ground_truth=1)

    assert intake.accept(model, [label], "open")[0][0] == 503
    unknown = Feedback(prediction_id="0" * 32, ground_truth=1)
    assert intake.accept(model, [unknown], "open")[0][0] == 404
    database.insert_predictions([row])  # the replay
    spool.delete_batches([PredictionBatch.of(row).batch_id])
    assert intake.accept(model, [label], "open") == [(201, None)]


class ReplayingSpool:
    """A spool that replays its row into the database just as the intake looks it up: between
    the intake's miss in the database and its look at the spool."""

    def __init__(self, spool: PredictionStore, database: PredictionStore) -> None:
        self.spool, self.database = spool, database

    def prediction(self, prediction_id: str) -> PredictionRow | None:
        row = self.spool.prediction(prediction_id)
        if row is not None:
            self.database.insert_predictions([row])
            self.spool.delete_batches([PredictionBatch.of(row).batch_id])
        return self.spool.prediction(prediction_id)


def test_a_label_sent_while_its_prediction_leaves_the_spool_is_stored(served, tmp_path):
    # Seen as a rare 404 under load: the row moved between the two lookups.
    database, spool = _stores(tmp_path)
    model, intake = _intake(database, ReplayingSpool(spool, database))
    row = PredictionRow(new_prediction_id(), time.time(), "m", "1", {"x": 1.0}, 1)
    spool.insert_predictions([row])
    label = Feedback(prediction_id=row.prediction_id, ground_truth=1)
    assert intake.accept(model, [label], "open") == [(201, None)]


def test_a_batch_answers_each_label_as_if_sent_alone_in_order(served, tmp_path):
    database, spool = _stores(tmp_path)
    model, intake = _intake(database, spool)
    rows = [PredictionRow(new_prediction_id(), time.time(), "m", "1", {"x": 1.0}, 1) for _ in "abc"]
    database.insert_predictions(rows[:2])
    spool.insert_predictions(rows[2:])
    database.add_feedback("m", rows[1].prediction_id, 0)  # labelled by an earlier request
    a, b, c = (row.prediction_id for row in rows)
    sent = [(a, 1), (a, 1), (a, 0), (b, 0), (b, 1), ("f" * 32, 1), (c, 1), (a, 1)]
    answers = intake.accept(
        model, [Feedback(prediction_id=p, ground_truth=t) for p, t in sent], "k"
    )
    # Expected: each label on its own, in order, through the single-label path.
    alone_db, alone_spool = _stores(tmp_path / "alone")
    alone_db.insert_predictions(rows[:2])
    alone_spool.insert_predictions(rows[2:])
    alone_db.add_feedback("m", b, 0)
    _, alone = _intake(alone_db, alone_spool)
    expected = [
        alone.accept(model, [Feedback(prediction_id=p, ground_truth=t)], "k")[0] for p, t in sent
    ]
    assert [status for status, _ in answers] == [201, 200, 409, 200, 409, 404, 503, 200]
    assert answers == expected
    assert database.outcomes("m", "1")["ground_truth"].tolist().count(1) == 1  # a's, once
