"""When the loop retrains: the sensor's rules as one pure function of what it read.

Shaped like ``gate.decide``: the sensor gathers ``RetrainFacts`` (the registry, the prediction log,
the Dagster instance, its cursor) and ``should_retrain`` decides, so every rule is tested without a
registry, a store or an instance, and a new rule is one field and one branch.

The rules, in the order they are asked:
- nothing serves yet: nothing to improve;
- a run of the model is in flight: never a second one;
- a trigger: ``min_feedback_rows`` new labels; fewer, at least ``min_quiet_rows``, after the
  labels went quiet; the champion's live metric past ``min_live_metric``; the champion older than
  ``max_age_hours`` (only with new labels). After a
  held gate, the live rule waits until the metric is worse than at the decision by
  ``backoff_live_drop``, and the age rule waits for the next decision;
- the cooldown since the last request or run, and at most ``max_runs_per_day``: both count the
  requests this sensor made (its cursor) as well as the runs the instance shows, because a run
  just requested can take seconds to appear there.

The run key is derived from the newest label and the last run, so two evaluations of the same
state request the same run, across daemon restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlserve_assets.ml.metrics import Metric
from mlserve_assets.spec.models import Retrain

DAY_SECONDS = 86400.0
QUIET_GAPS = 10
"""Quiet is also this many times the waiting labels' mean gap: a stream that trickles a label
a few minutes apart is still flowing, and its labels wait for the count like any other's."""


@dataclass(frozen=True)
class RetrainFacts:
    """What the sensor read at one moment: all the rules decide on."""

    model_name: str
    now: float
    champion_version: str | None
    """The version ``champion`` points at; None before the first promotion."""
    champion_created: float = 0.0
    """When the champion was registered (seconds since the epoch)."""
    in_flight_run: str | None = None
    """A run of the model's job still queued, starting or running."""
    last_run_id: str | None = None
    last_run_created: float | None = None
    runs_last_day: int = 0
    """Runs of the model's job the instance shows in the last 24 h."""
    requested: tuple[float, ...] = ()
    """When this sensor requested runs before (its cursor)."""
    new_labels: int = 0
    """Labels since the latest training, champion's or not, saw."""
    first_label: float = 0.0
    """When the oldest of them arrived."""
    latest_label: float = 0.0
    """When the newest of them arrived."""
    held_version: str | None = None
    """The latest registered version, when the gate held it."""
    live: float | None = None
    """The champion's metric on its latest labels; None below the minimum of labels, or unread."""
    live_at_hold: float | None = None
    """The champion's live metric when the gate held (None when it did not, or was not recorded)."""


@dataclass(frozen=True)
class RetrainDecision:
    """A request (with its key and tags) or the reason for none, and the sensor's next cursor."""

    request: bool
    reason: str
    requested: tuple[float, ...]
    run_key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def should_retrain(facts: RetrainFacts, rules: Retrain, metric: Metric) -> RetrainDecision:
    """Whether to request a retraining now, and why (or why not)."""
    name, now = facts.model_name, facts.now
    recent = tuple(t for t in facts.requested if t > now - DAY_SECONDS)

    def skip(reason: str) -> RetrainDecision:
        return RetrainDecision(False, reason, recent)

    if facts.champion_version is None:
        return skip(f"{name} has no champion yet: nothing serves, nothing to improve")
    if facts.in_flight_run is not None:
        return skip(f"run {facts.in_flight_run} of {name} is in flight")
    triggers = _triggers(facts, rules, metric)
    if not triggers:
        held = facts.held_version
        backoff = f"; the gate held v{held}, so back off" if held is not None else ""
        return skip(
            f"{facts.new_labels} labelled rows since the last training "
            f"(need {labels_needed(rules)}); live metric and age rules not triggered{backoff}"
        )
    started = [*recent]
    if facts.last_run_created is not None:
        started.append(facts.last_run_created)
    since_last = now - max(started, default=0.0)
    if since_last < rules.cooldown_seconds:
        return skip(
            f"cooldown: the last run was requested {since_last:.0f} s ago "
            f"(cooldown_seconds {rules.cooldown_seconds:g}); would retrain: " + "; ".join(triggers)
        )
    today = max(len(recent), facts.runs_last_day)
    if today >= rules.max_runs_per_day:
        return skip(
            f"cap: {today} runs in the last 24 h (max_runs_per_day {rules.max_runs_per_day})"
        )
    after = facts.last_run_id or "none"
    return RetrainDecision(
        True,
        "; ".join(triggers),
        (*recent, now),
        run_key=f"{name}-labels-until-{facts.latest_label!r}-after-{after}",
        tags={
            "mlserve/trigger": "; ".join(triggers)[:200],
            "mlserve/new_labels": str(facts.new_labels),
        },
    )


def labels_needed(rules: Retrain) -> str:
    """The count rule and the quiet rule in words, for the sensor's description and its skips."""
    quiet = rules.quiet_seconds
    also = "" if quiet is None else f", or {rules.min_quiet_rows} once quiet for {quiet:g} s"
    return f"{rules.min_feedback_rows}{also}"


def _triggers(facts: RetrainFacts, rules: Retrain, metric: Metric) -> list[str]:
    """Each rule that asks for a retraining, as the sentence the run's tag carries."""
    found = []
    new = facts.new_labels
    if new >= rules.min_feedback_rows:
        found.append(f"{new} new labelled rows >= min_feedback_rows {rules.min_feedback_rows}")
    elif new >= rules.min_quiet_rows and (quiet := _quiet_for(facts, rules)) is not None:
        found.append(
            f"{new} new labelled rows (>= min_quiet_rows {rules.min_quiet_rows}), "
            f"none for {quiet:.0f} s"
        )
    live = facts.live
    if rules.min_live_metric is not None and new and live is not None:
        # After a held gate, only a live metric clearly worse than at the decision asks again.
        worse = facts.live_at_hold is None or (
            metric.improvement(facts.live_at_hold, live) > rules.backoff_live_drop
        )
        if not metric.meets(live, rules.min_live_metric) and (facts.held_version is None or worse):
            found.append(
                f"live {metric.name} of v{facts.champion_version} is {live:.4f}, "
                f"past min_live_metric {rules.min_live_metric}"
            )
    age_hours = (facts.now - facts.champion_created) / 3600
    too_old = rules.max_age_hours is not None and age_hours > rules.max_age_hours
    if too_old and new and facts.held_version is None:
        found.append(f"champion v{facts.champion_version} is {age_hours:.1f} h old")
    return found


def _quiet_for(facts: RetrainFacts, rules: Retrain) -> float | None:
    """Seconds since the newest label when the labels count as stopped, else None.

    Stopped: no label for ``quiet_seconds`` and for ``QUIET_GAPS`` times the mean gap between the
    waiting labels, so that a slow stream is not taken for one that ended.
    """
    if rules.quiet_seconds is None:
        return None
    since = facts.now - facts.latest_label
    gap = (facts.latest_label - facts.first_label) / max(facts.new_labels - 1, 1)
    return since if since >= max(rules.quiet_seconds, QUIET_GAPS * gap) else None
