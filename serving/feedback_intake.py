"""Ground truth coming in: checked against the served model, stored once, counted.

A label is checked before anything is stored (a batch as a whole, as its schema is), stored as the
value the metrics read with the id of the key that sent it, and the same label sent again is a
stored label, not a conflict. Each key may send at most ``MLSERVE_FEEDBACK_PER_MINUTE`` labels a
minute (a token bucket per key, in this process): one key cannot flood the evidence the next
training and the gate read faster than someone can notice and purge it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import sqlalchemy as sa

from serving.config import ServingConfig
from serving.http.auth import ApiKeys, presented_key
from serving.http.bodies import Feedback
from serving.http.errors import ApiError, problem
from serving.log.client import PredictionLog
from serving.model.served import ServedModel
from serving.prometheus import ServiceMetrics
from serving.store.labelling import Outcome
from serving.store.predictions import PredictionStore
from serving.store.tables import DuplicateFeedbackError, UnknownPredictionError

logger = logging.getLogger("mlserve.serving")


class _Spooled(UnknownPredictionError):
    """A prediction not in the database yet: still in the service's spool."""


_Outcome = Outcome | _Spooled


class LabelRate:
    """At most ``per_minute`` labels a minute per key id, in bursts of up to that many (0: off)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, key_id: str, labels: int) -> None:
        """Admit ``labels`` from ``key_id`` now, or raise 429 saying when to retry."""
        if self.per_minute <= 0:
            return
        rate, now = self.per_minute / 60, time.monotonic()
        if labels > self.per_minute:
            text = f"at most {self.per_minute} labels a minute per key: send smaller batches"
            raise ApiError(429, [problem("", text)])
        with self._lock:
            tokens, then = self._buckets.get(key_id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - then) * rate)
            if labels <= tokens:
                self._buckets[key_id] = (tokens - labels, now)
                return
            self._buckets[key_id] = (tokens, now)
        wait = math.ceil((labels - tokens) / rate)
        text = f"this key sent its {self.per_minute} labels a minute: retry in {wait} s"
        raise ApiError(429, [problem("", text)], {"Retry-After": str(wait)})


RETRY = {"Retry-After": "5"}
"""On a feedback 503: a store down, or the prediction still in the spool; both pass."""


class FeedbackIntake:
    """Checks and stores labels for the model the request was read with."""

    def __init__(
        self,
        store: PredictionStore,
        metrics: ServiceMetrics,
        config: ServingConfig,
        log: PredictionLog | None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.rate = LabelRate(config.feedback_per_minute)
        self._log = log

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

    def admit(self, keys: ApiKeys, authorization: str | None, labels: int) -> str:
        """Who sends these ``labels`` (the key id recorded on each), if their rate allows."""
        sender = keys.sender(presented_key(authorization))
        self.rate.take(sender, labels)
        return sender

    def accept(
        self, model: ServedModel, items: list[Feedback], sender: str
    ) -> list[tuple[int, str | None]]:
        """Store checked labels in one transaction: per item, the HTTP status and the problem.

        201 for a new label, 200 for the same label sent again (a retry), else the refusal's
        status with its text. A store failure stores none of them and answers 503 for each.
        """
        # A regression label is stored as the float the metrics read (a 150-digit integer is
        # a valid label, but no JSON encoder on the way to the store takes it as an integer).
        truths = [float(i.ground_truth) if model.classes is None else i.ground_truth for i in items]
        labels = [(item.prediction_id, truth) for item, truth in zip(items, truths, strict=True)]
        try:
            outcomes = self._add(model.name, labels, sender)
        except sa.exc.SQLAlchemyError:
            logger.exception("feedback store failed")
            outcomes = [None] * len(labels)
        answers = []
        for (pid, truth), outcome in zip(labels, outcomes, strict=True):
            text = None
            if outcome is None:
                status, text = 503, "feedback store unavailable, retry later"
            elif isinstance(outcome, _Spooled):
                # Answered during a database outage: it reaches the log when the database
                # returns, and then takes its label. A 404 would read as final to a client.
                status, text = 503, "the prediction is still in the spool: retry shortly"
            elif isinstance(outcome, UnknownPredictionError):
                status, text = 404, f"no prediction of {model.name} with id {pid!r}"
            elif isinstance(outcome, DuplicateFeedbackError):
                status, text = 409, "this prediction already has another label; labels are final"
            else:
                status = 201 if outcome.new else 200
                if outcome.new:
                    regression = model.classes is None
                    self.metrics.labelled(model.name, outcome, truth, regression=regression)
            self.metrics.feedback(model.name, status)
            answers.append((status, text))
        return answers

    def _add(self, model_name: str, labels: list[tuple[str, Any]], sender: str) -> list[_Outcome]:
        """Store the labels; an id is unknown only if it is in neither the database nor the spool.

        An answered prediction is in the database or the spool at every instant (the spool
        replays a row into the database before it forgets it), but between a miss in the
        database and a look at the spool the row can move. Not in the spool now means in the
        database now: one more try there settles it.
        """
        outcomes: list[_Outcome] = list(self.store.add_labels(model_name, labels, sender))
        missed = [i for i, o in enumerate(outcomes) if isinstance(o, UnknownPredictionError)]
        ids = dict.fromkeys(labels[i][0] for i in missed)  # each looked up once
        spooled = {pid for pid in ids if self._spooled(model_name, pid)}
        again = [i for i in missed if labels[i][0] not in spooled]
        if again:
            retried = self.store.add_labels(model_name, [labels[i] for i in again], sender)
            for i, outcome in zip(again, retried, strict=True):
                outcomes[i] = outcome
        for i in missed:
            if labels[i][0] in spooled:
                outcomes[i] = _Spooled(labels[i][0])
        return outcomes

    def _spooled(self, model_name: str, prediction_id: str) -> bool:
        spool = None if self._log is None else self._log.spool
        if spool is None:
            return False
        row = spool.prediction(prediction_id)
        return row is not None and row.model_name == model_name
