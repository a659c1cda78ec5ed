"""The operator's commands about labels: who sent how many, and withdrawing a key's labels.

Exit codes: 0 done, 1 refused (a key id that sent no labels), 2 a usage error.
"""

from __future__ import annotations

import getpass

import click

from mlserve_assets.cli.project import emit, project, refuse, when


@click.group()
def labels() -> None:
    """Labels by the API key that sent them; withdraw a leaked key's labels."""


@labels.command(name="senders")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def senders_command(as_json: bool) -> None:
    """Labels per key id (`mlserve key` prints a key's id): counted and withdrawn."""
    from serving.store.withdrawals import senders

    with project() as p:
        found = senders(p.store)
    lines = [f"{'key id':14}  {'labels':>8}  {'withdrawn':>9}"]
    lines += [f"{k:14}  {v['labels']:>8}  {v['withdrawn']:>9}" for k, v in sorted(found.items())]
    emit(found, as_json, lines)


@labels.command()
@click.option("--key", "key_id", required=True, help="The key id whose labels to withdraw.")
@click.option("--reason", required=True, help="Why: recorded with the withdrawal.")
def purge(key_id: str, reason: str) -> None:
    """Withdraw every label KEY sent: no later training, gate or live metric reads them."""
    from serving.store.withdrawals import senders, withdraw

    with project() as p:
        if key_id not in senders(p.store):
            refuse(f"no labels were sent by key {key_id!r} (see `mlserve labels senders`)")
        done = withdraw(
            p.store, key_id, by=f"mlserve labels purge ({getpass.getuser()})", reason=reason
        )
    click.echo(
        f"withdrew {done.labels} labels of key {key_id} at {when(done.withdrawn_at)}; "
        "the next training leaves them out"
    )
