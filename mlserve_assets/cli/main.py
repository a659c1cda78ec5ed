"""The ``mlserve`` command: one group, and the one place every command is registered.

Each command lives in the module named for what it is about; see ``mlserve --help``.
"""

from __future__ import annotations

import click

from mlserve_assets.cli import (
    champion,
    labels,
    release,
    replay,
    scaffold,
    serve,
    simulate,
    spec,
    train,
)


@click.group()
def main() -> None:
    """Declarative ML pipelines: spec -> Dagster assets -> MLflow -> champion -> BentoML."""


for _command in (
    spec.validate,
    spec.plan,
    scaffold.init,
    train.train,
    train.dev,
    serve.serve,
    serve.key,
    serve.predict,
    release.bento,
    simulate.simulate,
    champion.status,
    champion.history_command,
    champion.promote,
    champion.rollback,
    replay.replay,
    labels.labels,
):
    main.add_command(_command)
