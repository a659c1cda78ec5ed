"""Which version serves: the ``champion`` alias, followed only where mlserve vetted the move.

Whoever can write to the registry can move an alias. The gate, ``mlserve promote`` and ``mlserve
rollback`` record every move they make in the prediction database, in the transaction that moves
the alias (``serving.registry.move_alias``), so the service serves the alias's version only when
the newest recorded move went to it. A move made around mlserve is refused: the loaded version
keeps serving, and the refusal is logged, counted (``mlserve_champion_refused``) and alertable. A
vetted version mlserve will not load (pickle, an untrusted type, no working prediction) is refused
the same way. ``MLSERVE_TRUST_REGISTRY=1`` serves whatever the alias names, for a team that moves
aliases in the MLflow UI on purpose.
"""

from __future__ import annotations

import logging
import threading

from serving.config import ServingConfig
from serving.model.artifact import RefusedModel
from serving.model.loading import load_version
from serving.model.served import ServedModel
from serving.prometheus import ServiceMetrics
from serving.registry import CHALLENGER, CHAMPION, ChampionState, RegistryClient, champion_state
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
        config: ServingConfig,
    ) -> None:
        self._client, self._store, self._metrics = client, store, metrics
        self._trusted = config.trusted_types
        self._runtime = (config.runtime, config.onnx_threads)
        self._trust_registry = config.trust_registry
        self._unsafe: dict[str, str] = {}
        """Versions that failed to load, and why: their files do not change, so not retried."""
        self._lock = threading.Lock()  # the poll thread and /admin/reload both follow
        self._refused: tuple[str, str] | None = None
        """The alias version refused last and why, so each refusal is logged and counted once."""

    def initial(self, name: str) -> ServedModel:
        """The vetted champion to start with (whatever the alias names)."""
        self._metrics.refused(name, None)  # exported from the start, for the alerts to read
        self._metrics.rolled_back(name, 0)
        state = self._state(name)
        self._report(name, state)
        if state.vetted is None:
            why = f": {self.refusal(name)}" if state.moved_around else ""
            raise RuntimeError(f"model {name!r} has no {CHAMPION} version to serve yet{why}")
        return self.load(name, state.vetted)

    def follow(self, served: ServedModel) -> ServedModel | None:
        """The newly vetted champion, or None while ``served`` should keep serving."""
        with self._lock:
            state = self._state(served.name)
            new = None
            if state.vetted not in (None, served.version, *self._unsafe):
                try:
                    new = self.load(served.name, state.vetted)
                except RefusedModel as exc:
                    self._unsafe[state.vetted] = f"mlserve will not load it: {exc}"
                else:
                    self._count_rollback(served.name, state.vetted)
            self._report(served.name, state)
            return new

    def challenger(
        self, name: str, loaded: ServedModel | None, champion: str
    ) -> ServedModel | None:
        """The vetted challenger to score in shadow: ``loaded`` if unchanged, None if none.

        Vetted like the champion: only a version a recorded move named (``mlserve promote
        --shadow``), loaded with the same checks; never the champion itself.
        """
        with self._lock:
            trust = self._trust_registry
            state = champion_state(
                self._client, self._store, name, trust_registry=trust, alias=CHALLENGER
            )
            wanted = state.vetted
            if wanted in (None, champion, *self._unsafe):
                return None
            if loaded is not None and loaded.version == wanted:
                return loaded
            try:
                found = self.load(name, wanted)
            except RefusedModel as exc:
                self._unsafe[wanted] = f"mlserve will not load it: {exc}"
                logger.error("%s v%s named by %s is refused: %s", name, wanted, CHALLENGER, exc)
                return None
            logger.info("scoring %s v%s in shadow", name, wanted)
            return found

    def load(self, name: str, version: str) -> ServedModel:
        """One registered version, read with mlserve's trusted types and checked to predict."""
        return load_version(self._client, name, version, self._trusted, *self._runtime)

    def _count_rollback(self, name: str, version: str) -> None:
        """Count the move to ``version`` if it was a rollback, for the alert that says so."""
        [newest] = moves.history(self._store, name, last=1) or [None]
        if newest is not None and newest.to_version == version and newest.rolls_back:
            logger.warning("%s rolled back from v%s: %s", name, newest.rolls_back, newest.reason)
            self._metrics.rolled_back(name)

    def refusal(self, name: str) -> str | None:
        """Why the alias's version is not served, while it is refused."""
        return None if self._refused is None else self._refused[1]

    def _state(self, name: str) -> ChampionState:
        trust = self._trust_registry
        return champion_state(self._client, self._store, name, trust_registry=trust)

    def _report(self, name: str, state: ChampionState) -> None:
        """Log and count a refusal once (an unrecorded move, or an unsafe version), or clear it."""
        if state.moved_around:
            newest = (
                "no move is recorded" if state.vetted is None else f"the newest is v{state.vetted}"
            )
            why = f"moved around mlserve: {newest} (MLSERVE_TRUST_REGISTRY=1 serves any alias)"
            self._refuse(name, str(state.alias), "unrecorded", why)
        elif state.vetted in self._unsafe:
            self._refuse(name, state.vetted, "unsafe", self._unsafe[state.vetted])
        elif self._refused is not None:
            self._refused = None
            self._metrics.refused(name, None)

    def _refuse(self, name: str, version: str, reason: str, problem: str) -> None:
        if self._refused is not None and self._refused[0] == version:
            return
        self._refused = (version, problem)
        logger.error("%s v%s named by %s is refused: %s", name, version, CHAMPION, problem)
        self._metrics.refused(name, reason)
