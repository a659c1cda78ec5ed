"""Commands about spec files: check them, and show what they become, without running anything.

``validate`` reads the data each spec names and runs the checks training would; ``plan`` builds the
Dagster definitions and lists each model's assets, checks, job, sensor and bento.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mlserve_assets.cli.project import emit, refuse
from mlserve_assets.settings import Settings
from mlserve_assets.spec.loader import SpecError, load_specs


@click.command()
@click.argument("specs", nargs=-1, type=click.Path(path_type=Path))
def validate(specs: tuple[Path, ...]) -> None:
    """Check spec files, and what training on their data would hit, without training.

    Exit 1 with every problem, each naming file or model, field, candidate and column.
    """
    from mlserve_assets.ml.validation import labelled_rows, training_problems

    paths = list(specs) or Settings.from_env().spec_paths
    try:
        models = load_specs(paths)
    except SpecError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    failed = False
    for model in models:
        # A SQL source is read when its run starts (the blocking checks cover it then).
        frame = None if model.source.kind == "sql" else model.source.load()
        problems = [] if frame is None else training_problems(model, frame)
        for problem in problems:
            click.echo(problem, err=True)
        failed = failed or bool(problems)
        if not problems:
            candidates = f"{len(model.candidates)} candidates"
            line = f"ok  {model.name}: {model.task}, {candidates}, {model.metric}"
            if frame is not None and (left_out := labelled_rows(model, frame)[1]):
                line += f"; {left_out} of {len(frame)} rows have no target and are left out"
            click.echo(line)
    if failed:
        sys.exit(1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan(as_json: bool) -> None:
    """What each declared model becomes: assets, checks, job, sensor and bento (nothing runs)."""
    from mlserve_assets.assembly import build_definitions
    from mlserve_assets.spec.loader import SpecError
    from serving.bento_store import bento_name

    settings = Settings.from_env()
    try:
        defs = build_definitions(settings)
    except SpecError as exc:
        refuse(str(exc))
    graph = defs.resolve_asset_graph()
    sensors = {s.name: s for s in defs.sensors or []}
    models: dict[str, dict[str, Any]] = {}
    for key in graph.toposorted_asset_keys:  # upstream first
        model, stage = key.path
        models.setdefault(model, {"assets": [], "checks": []})["assets"].append(stage)
    for check in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.path, c.name)):
        models[check.asset_key.path[0]]["checks"].append(
            f"{check.asset_key.path[1]}:{check.name}"
            + (" (blocking)" if graph.get_check_spec(check).blocking else "")
        )
    for name, model in models.items():
        sensor = sensors[f"retrain_{name}"]
        model |= {
            "job": f"train_{name}",
            "sensor": f"{sensor.name}: {sensor.description}",
            "bento": bento_name(name),
        }
    lines = []
    for name, model in models.items():
        lines += [
            name,
            f"  assets  {', '.join(model['assets'])}",
            f"  checks  {', '.join(model['checks'])}",
            f"  job     {model['job']}",
            f"  sensor  {model['sensor']}",
            f"  bento   {model['bento']}",
        ]
    emit(models, as_json, lines)
