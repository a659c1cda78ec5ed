"""Reading spec files: every problem located by file, model and field, all reported at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlserve_assets.spec.models import ModelSpec, SpecFile
from mlserve_assets.spec.sources import FileSource


class SpecError(ValueError):
    """A spec that cannot run, with every problem located by file, model and field."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"sklearn", "file", "sql"} and out.endswith("source"):
            continue  # the discriminator tag pydantic inserts, not a field the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(raw: Any, error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        model = f"model #{loc[1]}"
        with_name = raw.get("models") if isinstance(raw, dict) else None
        if isinstance(with_name, list) and loc[1] < len(with_name):
            entry = with_name[loc[1]]
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                model = f"model {entry['name']!r}"
        return f"{model}: field {_field_path(loc[2:])!r}: {message}"
    return f"field {_field_path(loc)!r}: {message}"


def _check_columns(model: ModelSpec) -> list[str]:
    try:
        available = model.source.columns()
    except (OSError, ValueError) as exc:
        return [f"model {model.name!r}: field 'source': {exc}"]
    if available is None:
        return []
    return [
        f"model {model.name!r}: field {field!r}: column {column!r} is not in the source "
        f"(it has {len(available)} columns, e.g. {available[:5]})"
        for field, column in [
            ("target", model.target),
            *(("features", f) for f in model.features or []),
            *(("columns", c) for c in model.columns),
        ]
        if column not in available
    ]


def load_spec(path: str | Path) -> SpecFile:
    """Parse and fully check one spec file; raise SpecError listing every problem found."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(path, [f"cannot read the file: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise SpecError(path, [f"not valid YAML: {exc}"]) from exc
    try:
        spec = SpecFile.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(path, [_describe(raw, e) for e in exc.errors()]) from exc
    return SpecFile(models=located(spec.models, path, path.parent))


def located(models: list[ModelSpec], origin: Path, folder: Path) -> list[ModelSpec]:
    """Models with file sources resolved against ``folder``, their columns checked in the data.

    A spec file and a component's ``defs.yaml`` both hold paths relative to where they are, and
    both must fail at load time on a column the data does not have.
    """
    models = [
        m.model_copy(update={"source": m.source.resolved(folder)})
        if isinstance(m.source, FileSource)
        else m
        for m in models
    ]
    problems = [p for m in models for p in _check_columns(m)]
    if problems:
        raise SpecError(origin, problems)
    return models


def load_specs(paths: list[Path]) -> list[ModelSpec]:
    """Every model of every file, with model names unique across files."""
    models: list[ModelSpec] = []
    seen: dict[str, Path] = {}
    for path in paths:
        for model in load_spec(path).models:
            if model.name in seen:
                raise SpecError(
                    path,
                    [f"model {model.name!r}: field 'name': already declared in {seen[model.name]}"],
                )
            seen[model.name] = path
            models.append(model)
    return models
