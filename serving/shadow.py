"""Shadow scoring: the challenger answers the requests the champion answered, and no one hears it.

The route hands each answered request to ``Shadow.offer`` (a put on a bounded queue: nothing is
scored, loaded or written on the request's path); a thread of its own scores the challenger on the
same records, as the service would (``ServedModel.replay``: its own signature checks, so a
challenger with other inputs is scored where it can be), and logs its answers beside the
champion's (``serving.store.shadow``). Anything the challenger does wrong (it raises, it cannot
take a record, the queue is full, the database refuses) loses shadow rows and is counted; it never
reaches an answer. Once labels arrive, champion and challenger meet on the same requests
(``mlserve status``, ``mlserve_assets.ml.replay``).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Any

from serving.model.served import ServedModel
from serving.prometheus import ServiceMetrics
from serving.store import shadow
from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionBatch

logger = logging.getLogger("mlserve.serving")

# Requests waiting to be scored: beyond this the shadow falls behind, and requests are skipped.
CAPACITY = 10_000
# Shadow answers are written together, at most this often: one commit instead of one per request.
FLUSH_SECONDS = 0.5


class Shadow:
    """Scores the loaded challenger (if any) on ``fraction`` of the answered requests."""

    def __init__(self, store: PredictionStore, metrics: ServiceMetrics, fraction: float) -> None:
        self.model: ServedModel | None = None
        """The challenger; None while there is none. Swapped by the registry poll."""
        self._store, self._metrics, self._fraction = store, metrics, fraction
        self._queue: queue.Queue[tuple[ServedModel, PredictionBatch] | None] = queue.Queue(CAPACITY)
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def offer(self, batch: PredictionBatch) -> None:
        """Queue an answered request for the challenger, without waiting."""
        model = self.model
        if model is None or random.random() >= self._fraction:
            return
        try:
            self._queue.put_nowait((model, batch))
        except queue.Full:
            self._metrics.shadow_skipped(model.name, len(batch.predictions), "behind")

    def close(self) -> None:
        """Score and write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        pending: list[shadow.ShadowRow] = []
        flushed = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=FLUSH_SECONDS)
            except queue.Empty:
                item = ()
            if item is None:
                self._write(pending)
                return
            if item:
                pending += self._score(*item)
            if pending and time.monotonic() - flushed >= FLUSH_SECONDS:
                self._write(pending)
                pending, flushed = [], time.monotonic()

    def _score(self, model: ServedModel, batch: PredictionBatch) -> list[shadow.ShadowRow]:
        records: list[Any] = batch.features
        try:
            scored = model.replay(records)
        except Exception as exc:  # whatever the challenger does, it answers no one
            logger.warning("shadow v%s could not score a request: %s", model.version, exc)
            self._metrics.shadow_skipped(model.name, len(records), "failed")
            return []
        now, out, agreed = time.time(), [], 0
        answered = zip(batch.prediction_ids, batch.predictions, scored.labels, strict=True)
        for i, (pid, answer, label) in enumerate(answered):
            if i in scored.unscorable:
                continue
            probabilities = scored.probabilities[i] if scored.probabilities else None
            out.append(shadow.ShadowRow(pid, model.version, model.name, now, label, probabilities))
            agreed += label == answer
        self._metrics.shadowed(model.name, model.version, len(out), agreed)
        return out

    def _write(self, rows: list[shadow.ShadowRow]) -> None:
        if not rows:
            return
        try:
            shadow.insert(self._store, rows)
        except Exception as exc:  # a shadow row lost is no answer lost: counted, not retried
            logger.warning("%d shadow answers not logged: %s", len(rows), exc)
            self._metrics.shadow_skipped(rows[0].model_name, len(rows), "unlogged")
