"""Schemathesis against a live service: every answer checked against the service's own document."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def fuzz(
    url: str, key: str, workdir: Path, exclude: list[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Schemathesis against a live service: valid and invalid requests from its own document.

    Every answer is checked: no 5xx, a documented status, a documented content type and body,
    invalid requests refused, undocumented methods refused. positive_data_acceptance is left
    out: a record can fit the schema and still be one the model cannot score (its output
    overflows), which the document lists as a 422.
    """
    checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
    ]
    command = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json"]
    command += ["--checks", ",".join(checks), "--max-examples", "40", "--seed", "1"]
    command += ["--phases", "examples,coverage,fuzzing", "--workers", "1"]
    command += ["--header", f"Authorization: Bearer {key}"]
    for path in exclude:
        command += ["--exclude-path", path]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)
