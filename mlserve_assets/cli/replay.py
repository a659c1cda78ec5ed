"""`mlserve replay`: registered versions on the requests the service answered and clients labelled.

Each version is loaded and scored as the service would load and answer with it (the same
checks, the same matrix, the same skops loading against the trusted types), so the version that
answered a request live gives the same answer here. Exit codes: 0 done, 1 refused (no labelled
requests in the window, a version that cannot be loaded or cannot take the requests).
"""

from __future__ import annotations

from datetime import datetime

import click

from mlserve_assets.cli.project import emit, project, refuse


def _time(text: str | None) -> float | None:
    """Unix seconds from ``text``: a number, or an ISO date or date-time (local time)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither Unix seconds nor an ISO date or date-time", param_hint="--since"
        ) from None


@click.command()
@click.argument("model_name")
@click.argument("versions", nargs=-1, required=True)
@click.option("--last", type=click.IntRange(min=1), help="Only the latest N labelled requests.")
@click.option("--since", help="Only requests made since: an ISO date or time, or Unix seconds.")
@click.option(
    "--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def replay(
    model_name: str,
    versions: tuple[str, ...],
    last: int | None,
    since: str | None,
    confidence: float,
    as_json: bool,
) -> None:
    """Score VERSIONS of MODEL_NAME on logged, labelled requests, beside what served them."""
    from mlserve_assets.ml.replay import replay as replayed
    from mlserve_assets.ml.replay import window
    from serving.model.artifact import RefusedModel, trusted_types
    from serving.model.loading import load_version

    with project() as p:
        spec = p.spec(model_name)
        requests = window(p.store.labelled(model_name), last, _time(since))
        if requests.empty:
            refuse(f"no labelled logged requests of {model_name} in that window")
        records = list(requests["features"])
        predictions = {}
        for version in dict.fromkeys(versions):
            try:
                served = load_version(
                    p.client, model_name, version, trusted_types(spec.trusted_types)
                )
            except RefusedModel as exc:
                refuse(f"v{version} is not loaded: {exc}")
            except Exception as exc:  # an unknown version, an unreachable registry
                refuse(f"v{version} of {model_name} cannot be read: {exc}")
            try:
                predictions[version] = served.replay(records).labels
            except ValueError as exc:
                refuse(f"v{version} cannot take the logged requests: {exc}")
    report = replayed(model_name, spec.scorer, requests, predictions, confidence)
    emit(report.as_dict(), as_json, report.lines())
