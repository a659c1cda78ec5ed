"""Which version serves: the ``champion`` alias, followed only where mlserve vetted the move.

Whoever can write to the registry can move an alias. The gate, ``mlserve promote`` and ``mlserve
rollback`` record every move they make in the prediction database, in the transaction that moves
the alias (``serving.registry.move_champion``), so the service serves the alias's version only when
the newest recorded move went to it. A move made around mlserve is refused: the loaded version
keeps serving, and the refusal is logged, counted (``mlserve_champion_refused``) and alertable. A
vetted version mlserve will not load (pickle, an untrusted type, no working prediction) is refused
the same way. ``MLSERVE_TRUST_REGISTRY=1`` serves whatever the alias names, for a team that moves
aliases in the MLflow UI on purpose.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from serving.config import ServingConfig
from serving.model.artifact import RefusedModel
from serving.model.served import ServedModel, load_version
from serving.prometheus import ServiceMetrics
from serving.registry import CHAMPION, RegistryClient, champion
from serving.store import moves
from serving.store.predictions import PredictionStore

logger = logging.getLogger("mlserve.serving")


class ChampionFollower:
    """Loads the vetted champion of one model and tells the service when it changes."""

    def __init__(
        self,
        client: RegistryClient,
        store: PredictionStore,
        metrics: ServiceMetrics,
        workdir: Path,
        config: ServingConfig,
    ) -> None:
        self._client, self._store, self._metrics = client, store, metrics
        self._workdir, self._trusted = workdir, config.trusted_types
        self._trust_registry = config.trust_registry
        self._unsafe: dict[str, str] = {}
        """Versions that failed to load, and why: their files do not change, so not retried."""
        self._lock = threading.Lock()  # the poll thread and /admin/reload both follow
        self._refused: tuple[str, str] | None = None
        """The alias version refused last and why, so each refusal is logged and counted once."""

    def initial(self, name: str) -> ServedModel:
        """The version to start with: the alias's if vetted, else the newest recorded move's."""
        self._metrics.refused(name, None)  # exported from the start, for the alert to read
        alias = self._alias(name)
        if alias is None:
            raise RuntimeError(f"model {name!r} has no {CHAMPION} version to serve yet")
        problem = self._unrecorded(name, alias)
        if problem is None:
            return self.load(name, alias)
        fallback = moves.latest(self._store, name)
        self._refuse(name, alias, "unrecorded", problem)
        if fallback is None:
            raise RuntimeError(f"model {name!r}: {CHAMPION} v{alias} refused ({problem})")
        return self.load(name, fallback)

    def follow(self, served: ServedModel) -> ServedModel | None:
        """The newly vetted champion, or None while ``served`` should keep serving."""
        with self._lock:
            return self._follow(served)

    def _follow(self, served: ServedModel) -> ServedModel | None:
        name = served.name
        alias = self._alias(name)
        if alias is None or alias == served.version:
            self._clear(name)
            return None
        problem = self._unrecorded(name, alias)
        if problem is not None:
            self._refuse(name, alias, "unrecorded", problem)
            return None
        if alias in self._unsafe:
            return None
        try:
            new = self.load(name, alias)
        except RefusedModel as exc:
            self._unsafe[alias] = str(exc)
            self._refuse(name, alias, "unsafe", f"mlserve will not load it: {exc}")
            return None
        self._clear(name)
        return new

    def load(self, name: str, version: str) -> ServedModel:
        """One registered version, read with mlserve's trusted types and checked to predict."""
        return load_version(self._client, name, version, self._workdir, self._trusted)

    def refusal(self, name: str) -> str | None:
        """Why the alias's version is not served, while it is refused."""
        return None if self._refused is None else self._refused[1]

    def _alias(self, name: str) -> str | None:
        current = champion(self._client, name)
        return None if current is None else str(current.version)

    def _unrecorded(self, name: str, alias: str) -> str | None:
        """Why a move of the alias to ``alias`` was not mlserve's, or None if it was."""
        if self._trust_registry:
            return None
        recorded = moves.latest(self._store, name)
        if recorded == alias:
            return None
        newest = "no move is recorded" if recorded is None else f"the newest went to v{recorded}"
        return f"moved around mlserve: {newest} (MLSERVE_TRUST_REGISTRY=1 serves any alias)"

    def _refuse(self, name: str, version: str, reason: str, problem: str) -> None:
        if self._refused is not None and self._refused[0] == version:
            return
        self._refused = (version, problem)
        logger.error("%s v%s named by %s is refused: %s", name, version, CHAMPION, problem)
        self._metrics.refused(name, reason)

    def _clear(self, name: str) -> None:
        if self._refused is not None:
            self._refused = None
            self._metrics.refused(name, None)
