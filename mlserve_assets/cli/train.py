"""Commands that run Dagster on the configured project: ``train`` in-process, ``dev`` for the UI.

Training goes through the same Dagster job and instance as the UI, so a run started here shows up
in ``dagster dev`` with its lineage, checks and metadata.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import click

from mlserve_assets.cli.project import dagster_environment
from mlserve_assets.cli.train_report import explain_failure, summary
from mlserve_assets.settings import PROJECT_ROOT, Settings
from mlserve_assets.spec.loader import SpecError


@click.command()
@click.option("--model", "model_name", help="Train only this model (default: every model).")
@click.option("--verbose", is_flag=True, help="Show Dagster's event log and full tracebacks.")
def train(model_name: str | None, verbose: bool) -> None:
    """Run the training job in-process on the configured Dagster instance.

    Ends with a table: per model, the steps run and their seconds, the best candidate and data
    mix, and the gate's decision; a failed step is reported as model, step, the error's message
    and what to change, in one screen (the traceback only with --verbose).
    """
    settings = Settings.from_env()
    os.environ.update(dagster_environment(settings))

    import dagster as dg

    from mlserve_assets.assembly import build_definitions
    from mlserve_assets.cli.train_progress import progress_logger as progress

    if not verbose:  # the step lines and the summary below are the report
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", module="mlflow")  # hints meant for notebook users
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        defs = build_definitions(settings)
    except SpecError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    job = defs.resolve_job_def(f"train_{model_name}" if model_name else "train_all")
    loggers: dict[str, dict] = {"console": {"config": {"log_level": "DEBUG"}}}
    if not verbose:  # a line per step instead of Dagster's event log
        job = job.with_logger_defs({"console": dg.colored_console_logger, "progress": progress})
        loggers = {"console": {"config": {"log_level": "CRITICAL"}}, "progress": {}}
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config={"loggers": loggers}
        )
    click.echo(summary(result))
    if not result.success:
        for event in result.all_events:
            check = event.event_specific_data
            if event.event_type_value == "ASSET_CHECK_EVALUATION" and not check.passed:
                model = check.asset_key.path[0]
                click.echo(f"{model} / check {check.check_name} failed: {check.description}")
            if event.is_step_failure:
                click.echo(explain_failure(event.step_key, event.step_failure_data.error, verbose))
        click.echo(f"run {result.run_id} failed (`mlserve dev` shows it in the UI)", err=True)
        sys.exit(1)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("dagster_args", nargs=-1, type=click.UNPROCESSED)
def dev(dagster_args: tuple[str, ...]) -> None:
    """Start the Dagster UI and daemon on the embedded default (extra args go to `dagster dev`)."""
    env = dagster_environment(Settings.from_env())
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    dagster = str(Path(sys.executable).parent / "dagster")  # the venv's, activated or not
    os.execve(dagster, [dagster, "dev", "-w", workspace, *dagster_args], env)
