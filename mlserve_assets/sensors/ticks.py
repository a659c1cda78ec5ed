"""How often a sensor runs: what a spec's ``check_every_seconds`` becomes for Dagster's daemon."""

from __future__ import annotations

# Dagster's sensor daemon starts a loop every 5 s and runs a sensor in it once the time since its
# last tick's start reaches ``minimum_interval_seconds``. A tick starts a moment after its loop
# does, so an interval of exactly a loop's multiple falls just short every other loop: with
# ``check_every_seconds: 5`` the retrain sensor ran every 10 s (its ticks in the daemon's log at
# :58, :07, :17, :27), and labels crossing the threshold waited 9 s for it (measured).
SLACK_SECONDS = 1


def minimum_interval(check_every_seconds: int) -> int:
    """The interval to give Dagster for a sensor meant to run every ``check_every_seconds``."""
    return max(1, check_every_seconds - SLACK_SECONDS)
