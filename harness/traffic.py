"""Load for the fault tests: threads sending single-record predictions until stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx


class Traffic:
    """Threads sending single records to ``url``'s ``/predict``, keeping every answer.

    Request ``n`` sends ``record(n)``. ``answers`` holds each answered prediction in arrival
    order and ``numbers`` the number of the request each one answered, so a test can tell which
    request an answer, or a logged row, belongs to; ``failures`` holds what was not answered.
    """

    def __init__(self, url: str, record: Callable[[int], dict[str, Any]], threads: int = 2) -> None:
        self.url, self._record = url, record
        self.answers: list[dict[str, Any]] = []
        self.numbers: list[int] = []
        self.failures: list[str] = []
        self._next, self._lock, self._stop = 0, threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._send) for _ in range(threads)]

    def _send(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                with self._lock:
                    number, self._next = self._next, self._next + 1
                try:
                    response = http.post(
                        f"{self.url}/predict", json={"records": [self._record(number)]}
                    )
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:300]}")
                    continue
                with self._lock:
                    self.answers.extend(response.json()["predictions"])
                    self.numbers.append(number)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def count(self) -> int:
        """Answers so far."""
        return len(self.answers)

    def wait_for(self, more: int, timeout: float = 30) -> None:
        """Until ``more`` answers than now have come, within ``timeout`` seconds."""
        target = self.count() + more
        deadline = time.monotonic() + timeout
        while self.count() < target:
            assert time.monotonic() < deadline, f"only {self.count()} answers, wanted {target}"
            time.sleep(0.05)
