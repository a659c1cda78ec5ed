"""Dependencies point one way, and every import is a declared dependency.

The rules, read from the source with ``ast`` (imports inside functions count too):
- ``serving`` never imports ``mlserve_assets``: a bento carries the serving package alone.
- in ``serving``, only ``registry.py`` imports MLflow: one place talks to the registry.
- ``ml/`` and ``spec/`` know no Dagster, no resource and no asset: they are plain functions and
  models that the CLI, the service's tools and the tests use without a code location.
- the assets, resources and sensors never import the CLI: the CLI drives them, not the reverse.
- every third-party module the product imports comes from a distribution ``pyproject.toml`` names.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from mlserve_assets.settings import PROJECT_ROOT

PURE = ["mlserve_assets/ml", "mlserve_assets/spec"]
DRIVEN = ["mlserve_assets/assets", "mlserve_assets/resources", "mlserve_assets/sensors"]


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name a file imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(*places: str) -> list[Path]:
    found = []
    for place in places:
        path = PROJECT_ROOT / place
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    assert found, places
    return found


def offenders(paths: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """Per file, the imports that are or sit below a forbidden module."""
    found = {}
    for path in paths:
        bad = sorted(
            m
            for m in imported_modules(path)
            if any(m == f or m.startswith(f"{f}.") for f in forbidden)
        )
        if bad:
            found[path.name] = bad
    return found


def test_serving_never_imports_the_dagster_code_location():
    assert offenders(files("serving"), ("mlserve_assets", "dagster")) == {}


def test_only_the_registry_module_of_serving_imports_mlflow():
    serving = [p for p in files("serving") if p != PROJECT_ROOT / "serving/registry.py"]
    assert offenders(serving, ("mlflow",)) == {}


@pytest.mark.parametrize("place", PURE)
def test_pure_modules_know_no_dagster_resources_or_assets(place):
    forbidden = ("dagster", "mlserve_assets.resources", "mlserve_assets.assets")
    assert offenders(files(place), forbidden) == {}


@pytest.mark.parametrize("place", DRIVEN)
def test_the_code_location_never_imports_the_cli(place):
    assert offenders(files(place), ("mlserve_assets.cli",)) == {}


def test_the_rule_checker_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from mlserve_assets.settings import Settings\n")
    assert offenders([sample], ("mlserve_assets",)) != {}


def _declared() -> set[str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"]]
    return {
        re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements
    }


def test_every_third_party_import_of_the_product_is_a_declared_dependency():
    providers = packages_distributions()
    declared = _declared()
    missing = {}
    for path in files("mlserve_assets", "serving"):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in {"mlserve_assets", "serving"}:
                continue
            dists = {d.lower().replace("_", "-") for d in providers.get(top, [top])}
            if not dists & declared:
                missing.setdefault(top, set()).add(str(path.relative_to(PROJECT_ROOT)))
    assert missing == {}


def test_every_declared_dependency_is_used():
    providers = packages_distributions()
    used = {
        d.lower().replace("_", "-")
        for path in files("mlserve_assets", "serving")
        for module in imported_modules(path)
        for d in providers.get(module.split(".")[0], [])
    }
    # Installed for what they run, not imported: the UI's server, Dagster's PostgreSQL storage
    # and Docker run launcher (named in infra/dagster/dagster.yaml), PostgreSQL's driver (named
    # by URL) and MLflow's S3 artifact client (named by an s3:// location), and the `dg` CLI for
    # component projects.
    run_only = {"dagster-webserver", "dagster-postgres", "dagster-docker", "psycopg2-binary"}
    run_only |= {"boto3"}
    run_only |= {"dagster-dg-cli", "uv"}  # and uv, which BentoML's bento build runs
    run_only |= {"ml-dtypes"}  # pinned for onnx, which skl2onnx imports (pyproject says why)
    assert _declared() - used - run_only == set()
