"""Ground truth coming in: checked against the served model, stored once, counted.

A label is checked before anything is stored (a batch as a whole, as its schema is), stored as the
value the metrics read, and the same label sent again is a stored label, not a conflict.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from serving.http.bodies import Feedback
from serving.http.errors import ApiError, problem
from serving.model.served import ServedModel
from serving.prometheus import ServiceMetrics
from serving.store.predictions import PredictionStore
from serving.store.tables import DuplicateFeedbackError, UnknownPredictionError

logger = logging.getLogger("mlserve.serving")


class FeedbackIntake:
    """Checks and stores labels for the model the request was read with."""

    def __init__(self, store: PredictionStore, metrics: ServiceMetrics) -> None:
        self.store = store
        self.metrics = metrics

    def check(self, model: ServedModel, items: list[Feedback], field: str) -> None:
        """Refuse (422) the request if any label cannot be ground truth for the served model.

        A batch is checked whole before anything is stored, as its schema is: a label of the
        wrong type is a bad request, not one item's outcome.
        """
        single = len(items) == 1 and field == "ground_truth"
        errors = [
            problem(field if single else f"{field}.{i}.ground_truth", text, None if single else i)
            for i, item in enumerate(items)
            if (text := model.check_label(item.ground_truth))
        ]
        if errors:
            self.metrics.feedback(model.name, 422)
            raise ApiError(422, errors)

    def accept(self, model: ServedModel, item: Feedback) -> tuple[int, str | None]:
        """Store one checked label: the HTTP status and, when refused, the problem.

        201 for a new label, 200 for the same label sent again (a retry), else the refusal's.
        """
        text = None
        # A regression label is stored as the float the metrics read (a 150-digit integer is
        # a valid label, but no JSON encoder on the way to the store takes it as an integer).
        truth = float(item.ground_truth) if model.classes is None else item.ground_truth
        try:
            labelled = self.store.add_feedback(model.name, item.prediction_id, truth)
        except UnknownPredictionError:
            status, text = 404, f"no prediction of {model.name} with id {item.prediction_id!r}"
        except DuplicateFeedbackError:
            status, text = 409, "this prediction already has another label; labels are final"
        except sa.exc.SQLAlchemyError:
            logger.exception("feedback store failed")
            status, text = 503, "feedback store unavailable, retry later"
        else:
            status = 201 if labelled.new else 200
            if labelled.new:
                self.metrics.labelled(
                    model.name,
                    labelled.model_version,
                    labelled.prediction,
                    truth,
                    regression=model.classes is None,
                )
        self.metrics.feedback(model.name, status)
        return status, text
