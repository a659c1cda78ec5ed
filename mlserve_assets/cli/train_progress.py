"""What ``mlserve train`` shows while it runs: a line per model and step, as each one ends.

A Dagster logger, not a poll of the event log: it sees each step event as it happens. Whole lines
only: MLflow prints to stderr mid-step ("Created version ..."), which would split a line left open.
"""

from __future__ import annotations

import logging

import click
import dagster as dg


class _StepLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None)
        if event is None or not event.step_key or "__" not in event.step_key:
            return
        model, _, step = event.step_key.partition("__")
        kind, data = event.event_type_value, event.event_specific_data
        if kind == "STEP_SUCCESS":
            click.echo(f"  {model:16} {step:20} {(data.duration_ms or 0) / 1000:6.1f} s")
        elif kind == "STEP_FAILURE":
            click.echo(f"  {model:16} {step:20} failed")
        elif kind == "ASSET_CHECK_EVALUATION" and not data.passed:
            click.echo(f"  {model:16} {step:20} check {data.check_name} failed")


@dg.logger(description="A line per model and step, for `mlserve train`.")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """Every record at DEBUG, where Dagster logs its step events; the handler keeps a few."""
    logger = logging.Logger("mlserve.train.progress", level=logging.DEBUG)
    logger.addHandler(_StepLines())
    return logger
