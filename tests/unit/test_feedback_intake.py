"""A label for a prediction still in the spool is a 503 to retry, not a final 404."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
from sklearn.linear_model import LogisticRegression

from serving.feedback_intake import FeedbackIntake
from serving.http.app import running_service
from serving.http.bodies import Feedback
from serving.log.ids import new_prediction_id
from serving.model.fields import Feature
from serving.model.served import ServedModel
from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionRow


def test_feedback_for_a_spooled_prediction_is_503_until_it_reaches_the_log(served, tmp_path):
    service = running_service()  # its metrics: Prometheus takes each name once per process
    database = PredictionStore(f"sqlite:///{tmp_path / 'log.db'}")
    spool = PredictionStore(f"sqlite:///{tmp_path / 'spool.db'}")
    for store in (database, spool):
        store.create_schema()
    estimator = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
    model = ServedModel("m", "1", "", None, None, estimator, [Feature("x", "double", True)])
    log = SimpleNamespace(spool=spool)  # what the intake asks of the prediction log
    intake = FeedbackIntake(database, service.metrics, service.config, log)
    row = PredictionRow(new_prediction_id(), time.time(), "m", "1", {"x": 1.0}, 1)
    spool.insert_predictions([row])
    label = Feedback(prediction_id=row.prediction_id, ground_truth=1)

    assert intake.accept(model, label, "open")[0] == 503
    assert intake.accept(model, Feedback(prediction_id="0" * 32, ground_truth=1), "open")[0] == 404
    database.insert_predictions([row])  # the replay
    spool.delete_predictions([row.prediction_id])
    assert intake.accept(model, label, "open") == (201, None)
