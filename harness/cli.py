"""``mlserve`` commands run in the test's process, as a user's shell would see them.

A process costs about 7 s of imports here; what a command says and its exit code do not depend on
it. Tests of what needs the process (``serve`` execs BentoML, the first ``train`` of a journey)
start the real entry point instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from click.testing import CliRunner

from mlserve_assets.cli.main import main
from mlserve_assets.settings import PROJECT_ROOT


@dataclass(frozen=True)
class Ran:
    """What a command printed and its exit code, named as ``subprocess`` names them."""

    returncode: int
    stdout: str
    stderr: str


def mlserve(args: list[str], env: dict[str, str]) -> Ran:
    """Run ``mlserve ARGS`` with ``env`` on top of this process's environment, then put it back.

    Dagster's locations are given explicitly: the CLI sets them as defaults in the environment,
    and only what ``env`` names is restored afterwards.
    """
    home = env.get("MLSERVE_HOME", str(PROJECT_ROOT / ".mlserve"))
    env = {
        "DAGSTER_HOME": str(PROJECT_ROOT),
        "MLSERVE_DAGSTER_STORAGE": f"{home}/dagster",
        **env,
    }
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)
