"""The operator's commands about the champion: status, history, promote, rollback.

Each reads or moves the registry and the champion's history directly, so they work with or without
a running service; a running service follows a move at its next registry poll. Read commands
take ``--json``. Exit codes: 0 done, 1 refused (an unknown model or version, nothing to roll back
to), 2 a usage error.
"""

from __future__ import annotations

import getpass

import click

from mlserve_assets.cli.project import Project, emit, project, refuse, when


@click.command()
@click.argument("model_name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(model_name: str | None, as_json: bool) -> None:
    """What serves MODEL_NAME (default: every model), since when, how it does, the last training."""
    import dagster as dg

    from mlserve_assets.cli.status import model_status

    with project() as p, dg.DagsterInstance.get() as instance:
        names = [model_name] if model_name else list(p.specs)
        found = [model_status(p.client, p.log, instance, p.spec(name)) for name in names]
    lines = []
    for s in found:
        lines.append(f"{s['model']}")
        c = s["champion"]
        if c is None:
            lines.append("  champion     none yet (no version passed the gate)")
        else:
            live = (
                "no labels yet"
                if c["live_score"] is None
                else f"{c['live_score']:.4g} on {c['live_labels']} labels"
            )
            lines += [
                f"  champion     v{c['version']} since {when(c['since'])} ({c['moved_by']})",
                f"  {c['metric']:12} trained {_score(c['training_score'])}, live {live}; "
                f"{c['labels_since_training']} labels since its training",
            ]
            if c["twin"] is not None:
                twin = c["twin"]
                runtime = "onnx twin" if twin["verified"] else "scikit-learn"
                lines.append(f"  runtime      {runtime}: {twin['reason']}")
            if c["baking"] is not None:
                lines.append(f"  baking       {c['baking']['outcome']}: {c['baking']['reason']}")
        t = s["last_training"]
        if t is not None:
            lines.append(
                f"  last trained v{t['version']} at {when(t['registered_at'])}, {t['trigger']}: "
                f"gate {t['gate']} — {t['gate_reason'] or 'undecided'}"
            )
        shadow = s["shadow"]
        if shadow is not None:
            compared = (
                f"{shadow['metric']} {shadow['score']:.4g} against {shadow['served']:.4g} served "
                f"on the same {shadow['labelled']} labelled requests, improvement in "
                f"[{shadow['gain_interval'][0]:+.4f}, {shadow['gain_interval'][1]:+.4f}]"
                if shadow["labelled"]
                else "no labels on its requests yet"
            )
            lines.append(
                f"  shadow       v{shadow['version']} scored {shadow['shadowed']} requests; "
                f"since {when(shadow['since'])}: {compared}"
            )
        drift = s["drift"]
        if drift is not None:
            moved = ", ".join(drift["drifted"]) + " moved" if drift["drifted"] else "nothing moved"
            estimate = (
                f"; estimated {drift['metric']} {drift['estimate']:.4g} (no labels needed)"
                if drift["estimate"] is not None
                else ""
            )
            lines.append(
                f"  drift        {moved} in the {drift['served_records']} records served before "
                f"{when(drift['checked_at'])}{estimate}"
            )
        answering = ", ".join(f"v{v} ({n})" for v, n in s["answering"].items()) or "none"
        lines += [f"  sensor       {s['sensor']}", f"  answering    {answering} (last 10 min)"]
    emit(found if model_name is None else found[0], as_json, lines)


def _score(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4g}"


@click.command(name="history")
@click.argument("model_name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def history_command(model_name: str, as_json: bool) -> None:
    """Every move of MODEL_NAME's champion: from, to, when, by what, why."""
    from serving.store.moves import history

    with project() as p:
        p.spec(model_name)
        moves = history(p.store, model_name)
    width = max([len(m.moved_by) for m in moves] + [2])
    lines = [f"{'when':19}  {'move':10}  {'by':{width}}  reason"]
    for m in moves:
        move = f"v{m.from_version or '-'} -> v{m.to_version}"
        lines.append(f"{when(m.moved_at):19}  {move:10}  {m.moved_by:{width}}  {m.reason}")
    if not moves:
        lines.append("(no recorded moves)")
    emit([m.as_dict() for m in moves], as_json, lines)


def _move(p: Project, model_name: str, version: str, reason: str, command: str) -> None:
    from mlflow.exceptions import MlflowException

    from serving.config import trust_registry
    from serving.registry import Tag, gate_outcome, move_alias, served_champion
    from serving.store.moves import ROLLBACK_OF

    try:
        target = p.client.get_model_version(model_name, version)
    except MlflowException:
        refuse(f"{model_name} has no version {version}")
    current = served_champion(p.client, p.store, model_name, trust_registry=trust_registry())
    if current is not None and str(current.version) == version:
        refuse(f"v{version} is already the champion of {model_name}")
    move = move_alias(
        p.client,
        p.store,
        model_name,
        version,
        by=f"mlserve {command} ({getpass.getuser()})",
        reason=reason,
        evidence={
            "gate": gate_outcome(target),
            "gate_reason": target.tags.get(Tag.GATE_REASON),
            **({ROLLBACK_OF: str(current.version)} if command == "rollback" and current else {}),
        },
    )
    click.echo(
        f"{model_name}: champion v{move.from_version or '-'} -> v{move.to_version}; "
        "a running service follows at its next registry poll"
    )


def _shadow(p: Project, model_name: str, version: str | None, reason: str) -> None:
    """Point ``challenger`` at ``version`` (None: stop the shadow), recorded like the champion."""
    from mlflow.exceptions import MlflowException

    from serving.config import trust_registry
    from serving.registry import CHALLENGER, champion_state, move_alias, served_champion

    trust = trust_registry()
    if version is not None:
        try:
            p.client.get_model_version(model_name, version)
        except MlflowException:
            refuse(f"{model_name} has no version {version}")
        current = served_champion(p.client, p.store, model_name, trust_registry=trust)
        if current is not None and str(current.version) == version:
            refuse(f"v{version} is the champion of {model_name}: it answers already")
    elif (
        champion_state(p.client, p.store, model_name, trust_registry=trust, alias=CHALLENGER).vetted
        is None
    ):
        refuse(f"{model_name} has no challenger in shadow")
    by = f"mlserve {'promote' if version else 'rollback'} --shadow ({getpass.getuser()})"
    move = move_alias(
        p.client, p.store, model_name, version, by=by, reason=reason, alias=CHALLENGER
    )
    now = f"v{move.to_version}, scored in shadow" if move.to_version else "none, no shadow"
    click.echo(
        f"{model_name}: challenger v{move.from_version or '-'} -> {now}; "
        "a running service follows at its next registry poll"
    )


@click.command()
@click.argument("model_name")
@click.argument("version")
@click.option("--reason", required=True, help="Why: recorded in the champion's history.")
@click.option(
    "--shadow",
    is_flag=True,
    help="Make VERSION the challenger instead: scored on live traffic, answering no one.",
)
def promote(model_name: str, version: str, reason: str, shadow: bool) -> None:
    """Make VERSION the champion of MODEL_NAME by hand, whatever the gate said."""
    with project() as p:
        p.spec(model_name)
        if shadow:
            _shadow(p, model_name, version, reason)
        else:
            _move(p, model_name, version, reason, "promote")


@click.command()
@click.argument("model_name")
@click.option("--to", "version", help="The version to go back to [default: the previous champion].")
@click.option("--reason", required=True, help="Why: recorded in the champion's history.")
@click.option("--shadow", is_flag=True, help="Stop scoring the challenger in shadow instead.")
def rollback(model_name: str, version: str | None, reason: str, shadow: bool) -> None:
    """Put MODEL_NAME's previous champion (or --to VERSION) back."""
    from serving.config import trust_registry
    from serving.registry import served_champion
    from serving.store.moves import history

    with project() as p:
        p.spec(model_name)
        if shadow:
            if version is not None:
                refuse("--shadow stops the shadow: it takes no --to")
            _shadow(p, model_name, None, reason)
            return
        current = served_champion(p.client, p.store, model_name, trust_registry=trust_registry())
        if version is None:
            if current is None:
                refuse(f"{model_name} has no champion to roll back from")
            arrivals = [
                m for m in history(p.store, model_name) if m.to_version == str(current.version)
            ]
            if not arrivals or arrivals[-1].from_version is None:
                refuse(f"no recorded champion before v{current.version}; name one with --to")
            version = arrivals[-1].from_version
        _move(p, model_name, version, reason, "rollback")
