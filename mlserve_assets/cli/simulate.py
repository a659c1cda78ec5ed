"""``mlserve simulate``: shifted traffic and delayed labels for a running service."""

from __future__ import annotations

from pathlib import Path

import click

from mlserve_assets.settings import Settings


@click.command()
@click.option("--url", default="http://127.0.0.1:3100", show_default=True, help="The service.")
@click.option("--model", "model_name", default="drift", show_default=True)
@click.option(
    "--scenario",
    type=click.Choice(["rotation", "features", "gradual", "inputs"]),
    default="rotation",
    show_default=True,
    help="The kind of shift: the boundary turns, other features matter, it turns gradually, or "
    "the inputs move and the concept stays.",
)
@click.option("--rounds", default=15, show_default=True, help="Batches of shifted traffic.")
@click.option("--batch", default=100, show_default=True, help="Records per batch.")
@click.option("--pause", default=3.0, show_default=True, help="Seconds between batches.")
@click.option("--label-noise", default=0.0, show_default=True, help="Share of labels flipped.")
@click.option(
    "--label-delay",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Rounds until a batch's labels arrive (more than --rounds: none arrive).",
)
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
    label_delay: int,
    api_key: str | None,
    plot_path: Path | None,
) -> None:
    """Send shifted traffic and delayed labels to a running service; show what the loop did."""
    from mlflow import MlflowClient

    from mlserve_assets.cli.simulation import simulate as run
    from serving.http.auth import client_headers
    from serving.registry import Tag, gate_outcome

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
        label_delay=label_delay,
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
