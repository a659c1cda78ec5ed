"""The production stack is closed by default: read from its files, no container started."""

from __future__ import annotations

import re

import yaml

from harness.stack import interpolate
from mlserve_assets.settings import PROJECT_ROOT

COMPOSE_TEXT = (PROJECT_ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SECRET = re.compile(r"PASSWORD|SECRET|_USER$")


def test_no_console_listens_on_every_interface_by_default():
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            parts = interpolate(port, {}).split(":")
            bound = parts[0] if len(parts) == 3 else "0.0.0.0"
            # The service's API alone is published (the balancer): every route needs a key there.
            assert bound == ("0.0.0.0" if name == "balancer" else "127.0.0.1"), (name, port)


def test_every_secret_is_required_and_none_is_on_a_command_line():
    references = re.findall(r"(?<!\$)\$\{([A-Z_]+)([^}]*)\}", COMPOSE_TEXT)
    secrets = [(name, rest) for name, rest in references if SECRET.search(name)]
    assert len(secrets) >= 8
    for name, rest in secrets:
        assert rest.startswith(":?"), f"${{{name}{rest}}}: an unset secret must stop compose"
    for name, service in COMPOSE["services"].items():
        command = " ".join(map(str, service.get("command", [])))
        assert not SECRET.search(command.replace("$$", "")), (name, command)
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()
    example = (PROJECT_ROOT / ".env.example").read_text()
    for name, _ in secrets:
        if name.endswith("_PASSWORD"):  # shipped empty: nobody runs on a guessable one
            assert re.search(rf"^{name}=$", example, re.MULTILINE), name


def test_every_image_runs_its_process_as_a_user_other_than_root():
    for dockerfile in sorted((PROJECT_ROOT / "infra").rglob("Dockerfile")):
        users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
        if dockerfile.parent.name == "postgres":  # starts as root to own its volume, then drops
            entrypoint = (dockerfile.parent / "entrypoint.sh").read_text()
            assert 'exec su postgres -c "postgres' in entrypoint
            continue
        assert users and users[-1] not in {"root", "0"}, dockerfile


def test_a_run_container_gets_every_setting_of_the_stack():
    # The run launcher passes settings by name from the daemon's environment: a setting added
    # to the stack and not to this list would be missing in every run.
    instance = yaml.safe_load((PROJECT_ROOT / "infra/dagster/dagster.yaml").read_text())
    passed = instance["run_launcher"]["config"]["env_vars"]
    assert sorted(passed) == sorted(COMPOSE["x-mlserve-env"])
