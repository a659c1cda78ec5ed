"""The ``mlserve`` command: check specs, train through Dagster, open the UI, serve a bento.

Training goes through the same Dagster job and instance as the UI, so a run started here shows up
in ``dagster dev`` with its lineage, checks and metadata.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

import click

from mlserve_assets import champion_cli, model_cli, scaffold
from mlserve_assets.settings import PROJECT_ROOT, Settings
from mlserve_assets.spec_loader import SpecError, load_specs
from mlserve_assets.train_report import explain_failure, summary


def embedded_environment(settings: Settings) -> dict[str, str]:
    """Environment defaults that point Dagster at the project's dagster.yaml and storage folder."""
    env = dict(os.environ)
    env.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    env.setdefault("MLSERVE_DAGSTER_STORAGE", str(settings.home / "dagster"))
    return env


@click.group()
def main() -> None:
    """Declarative ML pipelines: spec -> Dagster assets -> MLflow -> champion -> BentoML."""


@main.command()
@click.argument("specs", nargs=-1, type=click.Path(path_type=Path))
def validate(specs: tuple[Path, ...]) -> None:
    """Check spec files, and what training on their data would hit, without training.

    Exit 1 with every problem, each naming file or model, field, candidate and column.
    """
    from mlserve_assets.ml.validation import training_problems

    paths = list(specs) or Settings.from_env().spec_paths
    try:
        models = load_specs(paths)
    except SpecError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    failed = False
    for model in models:
        # A SQL source is read when its run starts (the blocking checks cover it then).
        problems = (
            [] if model.source.kind == "sql" else training_problems(model, model.source.load())
        )
        for problem in problems:
            click.echo(problem, err=True)
        failed = failed or bool(problems)
        if not problems:
            candidates = f"{len(model.candidates)} candidates"
            click.echo(f"ok  {model.name}: {model.task}, {candidates}, {model.metric}")
    if failed:
        sys.exit(1)


@main.command()
@click.option("--model", "model_name", help="Train only this model (default: every model).")
@click.option("--verbose", is_flag=True, help="Show Dagster's event log and full tracebacks.")
def train(model_name: str | None, verbose: bool) -> None:
    """Run the training job in-process on the configured Dagster instance.

    Ends with a table: per model, the steps run and their seconds, the best candidate and data
    mix, and the gate's decision; a failed step is reported as model, step, the error's message
    and what to change, in one screen (the traceback only with --verbose).
    """
    settings = Settings.from_env()
    os.environ.update(embedded_environment(settings))

    import dagster as dg

    from mlserve_assets.assembly import build_definitions
    from mlserve_assets.train_progress import progress_logger as progress

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


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("dagster_args", nargs=-1, type=click.UNPROCESSED)
def dev(dagster_args: tuple[str, ...]) -> None:
    """Start the Dagster UI and daemon on the embedded default (extra args go to `dagster dev`)."""
    env = embedded_environment(Settings.from_env())
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    dagster = str(Path(sys.executable).parent / "dagster")  # the venv's, activated or not
    os.execve(dagster, [dagster, "dev", "-w", workspace, *dagster_args], env)


@main.command()
@click.argument("model_name")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3100, show_default=True, help="The Dagster UI keeps 3000.")
@click.option(
    "--wait",
    "wait_seconds",
    default=0.0,
    show_default=True,
    help="How long to wait for the model's first bento (a fresh stack has none yet).",
)
def serve(model_name: str, host: str, port: int, wait_seconds: float) -> None:
    """Serve the newest bento of MODEL_NAME, as its `bento` asset built it, with `bentoml serve`.

    Without MLSERVE_API_KEYS or MLSERVE_API_KEYS_FILE it makes a local key with every scope
    ($MLSERVE_HOME/api-key) that `mlserve simulate` uses; predictions stay open unless
    MLSERVE_OPEN_SCOPES says otherwise.

    The bento holds the promoted version, so the service starts without MLflow; once running it
    follows the `champion` alias like any other instance. It is handed this project's locations,
    so it logs to the prediction store the feedback assets and the sensor read, and follows the
    registry the training writes, on the embedded default as on the production stack.
    """
    settings = Settings.from_env()
    # BentoML reads BENTOML_HOME once, on import; the service reads the rest when it starts.
    os.environ.update(settings.environment())
    if not os.environ.get("MLSERVE_API_KEYS") and not os.environ.get("MLSERVE_API_KEYS_FILE"):
        from serving.auth import local_key

        _, keys_file = local_key(settings.home)
        os.environ["MLSERVE_API_KEYS_FILE"] = str(keys_file)
        click.echo(f"feedback and admin need the key in {settings.home / 'api-key'}")

    import bentoml
    from bentoml.exceptions import NotFound

    from serving.package import bento_name

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            tag = str(bentoml.bentos.get(f"{bento_name(model_name)}:latest").tag)
            break
        except NotFound:
            if time.monotonic() >= deadline:
                click.echo(
                    f"no bento for {model_name!r} in {settings.bentoml_home}: materialise "
                    f"{model_name}/bento first (`mlserve train --model {model_name}`)",
                    err=True,
                )
                sys.exit(1)
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    click.echo(f"serving {tag}")
    bentoml_bin = str(Path(sys.executable).parent / "bentoml")
    os.execv(bentoml_bin, [bentoml_bin, "serve", tag, "--host", host, "--port", str(port)])


@main.command()
@click.option(
    "--scopes",
    default="predict,feedback",
    show_default=True,
    help="Comma-separated: predict, feedback, admin.",
)
def key(scopes: str) -> None:
    """Make a new API key: the key for the client, and the line for the service's keys file.

    Only the line's hash reaches the service. To rotate, add the new line, move the clients to
    the new key, then delete the old line; every line in the file is valid at once.
    """
    from serving.auth import KeyConfigError, entry, new_key

    secret = new_key()
    try:
        line = entry(scopes, secret)
    except KeyConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--scopes") from exc
    click.echo(f"key (give to the client):  {secret}")
    click.echo(f"entry (MLSERVE_API_KEYS_FILE):  {line}")


@main.command()
@click.option("--url", default="http://127.0.0.1:3100", show_default=True, help="The service.")
@click.option("--model", "model_name", default="drift", show_default=True)
@click.option(
    "--scenario",
    type=click.Choice(["rotation", "features", "gradual"]),
    default="rotation",
    show_default=True,
    help="The kind of shift: the boundary turns, other features matter, or it turns gradually.",
)
@click.option("--rounds", default=15, show_default=True, help="Batches of shifted traffic.")
@click.option("--batch", default=100, show_default=True, help="Records per batch.")
@click.option("--pause", default=3.0, show_default=True, help="Seconds between batches.")
@click.option("--label-noise", default=0.0, show_default=True, help="Share of labels flipped.")
@click.option(
    "--api-key",
    envvar="MLSERVE_API_KEY",
    help="A key with the feedback scope [default: $MLSERVE_HOME/api-key, made by mlserve serve].",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of the accuracy per round, with each promotion marked.",
)
def simulate(
    url: str,
    model_name: str,
    scenario: str,
    rounds: int,
    batch: int,
    pause: float,
    label_noise: float,
    api_key: str | None,
    plot_path: Path | None,
) -> None:
    """Send shifted traffic and delayed labels to a running service; show what the loop did."""
    from mlflow import MlflowClient

    from mlserve_assets.simulation import simulate as run
    from serving.auth import client_headers
    from serving.contract import Tag, gate_outcome

    settings = Settings.from_env()
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    before = {str(v.version) for v in client.search_model_versions(f"name='{model_name}'")}
    report = run(
        url,
        scenario=scenario,
        rounds=rounds,
        batch=batch,
        pause=pause,
        label_noise=label_noise,
        headers=client_headers(api_key, settings.home),
        say=click.echo,
    )
    first, last = report.rounds[0], report.rounds[-1]
    click.echo(
        f"accuracy on shifted traffic: {first['accuracy']:.3f} (v{first['version']}) -> "
        f"{last['accuracy']:.3f} (v{last['version']}); post-shift model {last['oracle']:.3f}"
    )
    for version in client.search_model_versions(f"name='{model_name}'"):
        if str(version.version) not in before:
            click.echo(
                f"v{version.version} trained on {version.tags.get(Tag.FEEDBACK_ROWS)} "
                f"feedback rows ({version.tags.get(Tag.CANDIDATE)} x {version.tags.get(Tag.MIX)}): "
                f"gate {gate_outcome(version)} — "
                f"{version.tags.get(Tag.GATE_REASON, 'the run is still going')}"
            )
    if plot_path is not None:
        report.plot(plot_path)
        click.echo(f"plot written to {plot_path}")


# The operator's commands live in their own module; registered here, on the one group.
for _command in (
    champion_cli.status,
    champion_cli.history_command,
    champion_cli.promote,
    champion_cli.rollback,
    model_cli.plan,
    model_cli.predict,
    scaffold.init,
):
    main.add_command(_command)
