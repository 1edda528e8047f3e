"""The images carry what production runs and nothing else; docker-compose balances two of each tier.

No Docker engine here: the Dockerfiles are read, their checks run as shell, the compose file is
rendered by `docker-compose config`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
DEV_TOOLS = {"pytest", "pytest-asyncio", "playwright", "schemathesis", "ruff", "mypy", "hypothesis"}


def pins(lock: str) -> dict[str, str]:
    """name -> version of a lock's `name==version` lines (comments and `-r` includes skipped)."""
    found: dict[str, str] = {}
    for line in (REQUIREMENTS / lock).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-r"):
            continue
        name, version = line.split("==")
        found[canonicalize_name(name)] = version
    return found


def top_level(requirements: str) -> list[Requirement]:
    lines = (REQUIREMENTS / requirements).read_text().splitlines()
    stripped = (line.split("#", 1)[0].strip() for line in lines)
    return [Requirement(line) for line in stripped if line and not line.startswith("-r")]


# --- the runtime lock -----------------------------------------------------------------------


def test_the_runtime_lock_has_no_test_or_lint_tools_and_the_dev_lock_adds_them() -> None:
    runtime, dev = pins("api-runtime.lock"), pins("api-dev.lock")
    assert not DEV_TOOLS & set(runtime), DEV_TOOLS & set(runtime)
    assert set(dev) >= DEV_TOOLS
    assert not set(runtime) & set(dev), "a package is pinned in both locks"
    assert "-r api-runtime.lock" in (REQUIREMENTS / "api-dev.lock").read_text().splitlines()


def test_the_locks_pin_what_the_environment_runs() -> None:
    """Splitting the lock upgraded nothing: every pin is the version installed in .venv."""
    wrong = {
        name: (version, metadata.version(name))
        for name, version in (pins("api-runtime.lock") | pins("api-dev.lock")).items()
        if metadata.version(name) != version
    }
    assert not wrong


def test_the_runtime_lock_is_exactly_the_closure_of_the_runtime_requirements() -> None:
    """Every dependency (extras and markers as pip evaluates them) is pinned, and nothing else."""
    wanted: dict[str, set[str]] = {}
    queue = [(canonicalize_name(r.name), set(r.extras)) for r in top_level("api-runtime.txt")]
    while queue:
        name, extras = queue.pop()
        if name in wanted and extras <= wanted[name]:
            continue
        wanted[name] = wanted.get(name, set()) | extras
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            active = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in wanted[name] | {""}
            )
            if active:
                queue.append((canonicalize_name(requirement.name), set(requirement.extras)))
    runtime = set(pins("api-runtime.lock"))
    assert set(wanted) - runtime == set(), "needed at run time but not in api-runtime.lock"
    assert runtime - set(wanted) == set(), "in api-runtime.lock but nothing at run time needs it"


# Runs in a child interpreter of .venv with every package outside the runtime lock made unimportable, as in
# the image: an optional import (httpx's CLI tries rich) falls back there as it would, a needed one fails.
IMPORT_EVERY_API_MODULE = """
import importlib, json, pathlib, sys
blocked = set(json.loads(sys.argv[1]))

class OutsideTheRuntimeLock:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in api-runtime.lock)", name=name)
        return None

sys.meta_path.insert(0, OutsideTheRuntimeLock)
names = ["connectors.rasa.client", "connectors.rasa.outcome"]
for root in ("conversation_api", "connectors/whatsapp"):
    for path in sorted(pathlib.Path(root).rglob("*.py")):
        parts = path.with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
for name in names:
    importlib.import_module(name)
print(json.dumps(len(names)))
"""


def test_every_module_of_the_api_imports_with_only_the_runtime_lock() -> None:
    """Imports every module of the API and the WhatsApp connector with the dev-only packages hidden.

    (A fresh venv from the runtime lock alone takes ~30 s to build; hiding the rest is the same
    check in a second.)
    """
    runtime = set(pins("api-runtime.lock"))
    owners = metadata.packages_distributions()
    blocked = sorted(
        module
        for module, packages in owners.items()
        if not {canonicalize_name(package) for package in packages} & runtime
    )
    assert {"pytest", "playwright", "schemathesis", "mypy", "rich"} <= set(blocked)
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_API_MODULE, json.dumps(blocked)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.splitlines()[-1]) > 50


def test_the_api_image_installs_only_the_runtime_lock() -> None:
    dockerfile = (ROOT / "docker/api.Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements/api-runtime.lock" in dockerfile
    assert "api-dev" not in dockerfile and "requirements/api.lock" not in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    rule = next(line for line in makefile.splitlines() if line.startswith(".venv/.installed:"))
    assert "requirements/api-runtime.lock" in rule and "requirements/api-dev.lock" in rule
