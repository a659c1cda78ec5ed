"""What ``mlserve train`` says at the end: a table per model, and each failed step explained."""

from __future__ import annotations


def summary(result: object) -> str:
    """One row per model: what the gate did, the best candidate and mix, steps and seconds."""
    models: dict[str, dict[str, object]] = {}
    for event in result.all_events:
        if event.step_key is None or "__" not in event.step_key:
            continue
        model = models.setdefault(event.step_key.partition("__")[0], {"steps": 0, "ms": 0.0})
        if event.event_type_value == "STEP_SUCCESS":
            model["steps"] += 1
            model["ms"] += event.event_specific_data.duration_ms or 0.0
        if event.event_type_value == "ASSET_MATERIALIZATION":
            metadata = event.step_materialization_data.materialization.metadata
            meta = {k: v.value for k, v in metadata.items()}
            wanted = ("decision", "best_candidate", "best_mix", "unlabelled_rows_left_out")
            model.update({k: meta[k] for k in wanted if k in meta})
    lines = [f"{'model':16} {'steps':>5} {'seconds':>8}  {'best':24}  decision"]
    for name, m in models.items():
        best = f"{m.get('best_candidate', '-')} x {m.get('best_mix', '-')}"
        decision = str(m.get("decision", "did not reach the gate"))
        lines.append(
            f"{name:16} {m['steps']:>5} {m['ms'] / 1000:>8.1f}  {best:24}  {decision[:70]}"
        )
    lines += [
        f"{name}: {m['unlabelled_rows_left_out']} rows without a target left out "
        "(target_missing: drop)"
        for name, m in models.items()
        if m.get("unlabelled_rows_left_out")
    ]
    return "\n".join(lines)


def explain_failure(step: str, error: object, verbose: bool) -> str:
    """One failed step: model, step, the deepest error's message, and what to change."""
    model, _, stage = step.partition("__")
    cause = error
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause
    message = cause.message.strip()  # "ValueError: ..." already
    hint = next((h for pattern, h in _HINTS if pattern in message), _HINTS[-1][1])
    lines = [
        f"{model} / {stage} failed: {message.splitlines()[0][:300]}",
        f"  what to change: {hint}",
    ]
    if verbose:
        lines.append(error.to_string() if hasattr(error, "to_string") else str(error))
    return "\n".join(lines)


_HINTS = [
    (
        "could not convert string to float",
        "a text column reaches a numeric step: remove "
        "prepare: none (mlserve then encodes it) or leave the column out of features",
    ),
    (
        "contains NaN",
        "a column has gaps and a candidate cannot take them: remove prepare: none "
        "(mlserve then imputes) or start the candidate with an imputer",
    ),
    (
        "least populated class",
        "a class has too few rows to stratify: add rows, merge classes or "
        "set split.stratify: false",
    ),
    (
        "blocking asset check failed",
        "the data broke a rule: fix the rows the failed check above names, or the rule",
    ),
    (
        "",
        "run `mlserve validate` for what the spec and data would trip over; "
        "`mlserve train --verbose` shows the traceback",
    ),
]
