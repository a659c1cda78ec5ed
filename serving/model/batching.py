"""Adaptive batching of concurrent predict calls into one estimator call.

A scikit-learn predict costs about the same whether it sees one row or a hundred (input validation
dominates: 338 µs for 1 row, 362 µs for 100, measured), so requests that arrive while one batch is
computing are stacked and predicted together on the next pass. Nothing waits for a timer: with one
request in flight it is predicted at once, and under load batches grow by themselves.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.model.served import ServedModel
from serving.store.ids import new_batch_id
from serving.store.tables import PredictionBatch


@dataclass(frozen=True)
class Prediction:
    """One request's share of a batch, and the model version that computed it."""

    model: ServedModel
    labels: list[Any]
    probabilities: list[dict[str, float]] | None
    unscorable: list[int]  # rows of this request whose output is not a number

    def batch(self, records: list[dict[str, Any]]) -> PredictionBatch:
        """The answers to ``records`` as the log keeps them, under a new batch id."""
        model = self.model
        broken = [model.violations(record) for record in records] if model.rules else []
        return PredictionBatch(
            batch_id=new_batch_id(),
            created_at=time.time(),
            model_name=model.name,
            model_version=model.version,
            features=records,
            predictions=self.labels,
            probabilities=self.probabilities,
            violations=broken if any(broken) else None,
        )


class PredictBatcher:
    """Collects (model, matrix) pairs from the event loop and predicts them in batches."""

    def __init__(self, max_rows: int = 4096) -> None:
        self.max_rows = max_rows
        self._queue: asyncio.Queue[tuple[ServedModel, np.ndarray, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None

    async def predict(self, model: ServedModel, matrix: np.ndarray) -> Prediction:
        """Predict ``matrix`` with ``model`` (the one its rows were checked against)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((model, matrix, done))
        return await done

    async def _run(self) -> None:
        queue = self._queue
        if queue is None:
            return
        while True:
            batch = [await queue.get()]
            rows = len(batch[0][1])
            while not queue.empty() and rows < self.max_rows:
                batch.append(queue.get_nowait())
                rows += len(batch[-1][1])
            for model in {id(item[0]): item[0] for item in batch}.values():
                self._predict_together(model, [item for item in batch if item[0] is model])
            await asyncio.sleep(0)  # let the next requests queue before the next pass

    @staticmethod
    def _predict_together(model: ServedModel, items: list[tuple[Any, np.ndarray, Any]]) -> None:
        try:
            labels, probabilities, unscorable = model.predict(
                np.vstack([matrix for _, matrix, _ in items])
            )
        except Exception as exc:
            for _, _, done in items:
                if not done.done():
                    done.set_exception(exc)
            return
        start = 0
        for _, matrix, done in items:
            end = start + len(matrix)
            share = None if probabilities is None else probabilities[start:end]
            bad = [row - start for row in unscorable if start <= row < end]
            if not done.done():
                done.set_result(Prediction(model, labels[start:end], share, bad))
            start = end
