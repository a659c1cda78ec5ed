"""Releasing a model as an image: the bento of the registered version that a deployment pins.

``mlserve bento MODEL`` answers which version the registry's champion is and which bento holds it,
building the bento when this BentoML home has none (a CI machine starts empty); a release job
hands the tag to ``bentoml containerize`` and names the image after the version
(``.github/workflows/ci.yml``). The registry decides the version, never the job.
"""

from __future__ import annotations

import click

from mlserve_assets.cli.project import emit, project, refuse


@click.command()
@click.argument("model_name")
@click.option("--version", help="A registered version (default: the champion).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bento(model_name: str, version: str | None, as_json: bool) -> None:
    """The bento of MODEL_NAME's champion (or --version), built if missing: its tag and version."""
    import dagster as dg
    from mlflow.exceptions import MlflowException

    from mlserve_assets.resources.bentos import BentoPackager
    from serving.registry import CHAMPION

    with project() as p:
        spec = p.spec(model_name)
        try:
            found = (
                p.client.get_model_version(model_name, version)
                if version
                else p.client.get_model_version_by_alias(model_name, CHAMPION)
            )
        except MlflowException:
            what = f"version {version}" if version else "champion"
            refuse(f"{model_name} has no {what} in the registry: nothing to release")
        packager = BentoPackager(
            bentoml_home=str(p.settings.bentoml_home),
            tracking_uri=p.settings.mlflow_tracking_uri,
        )
        try:
            tags = packager.build(model_name, str(found.version), spec.trusted_types)
        except dg.Failure as exc:  # the packager's child failed: say why, not a traceback
            stderr = exc.metadata["stderr"].value.strip().splitlines()
            refuse(f"{exc.description}: {stderr[-1] if stderr else 'no output'}")
    released = {
        "model": model_name,
        "version": str(found.version),
        "bento": tags["bento"],
        "bentoml_home": str(p.settings.bentoml_home),
    }
    lines = [f"{model_name} v{found.version}: bento {tags['bento']} in {p.settings.bentoml_home}"]
    emit(released, as_json, lines)
