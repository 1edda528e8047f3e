"""The images carry what production runs and nothing else; docker-compose balances two of each tier.

No Docker engine here: the Dockerfiles are read, their checks run as shell, the compose file is
rendered by `docker-compose config`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pytest
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


# --- the Rasa image carries the tested model ---------------------------------------------------

MODEL_NAME = re.compile(r"models/reviewbot-[0-9a-f]{16}\.tar\.gz")


def training_inputs(tmp_path: Path) -> Path:
    """A copy of what the Rasa image copies before its check: config, domain, data, the script."""
    app = tmp_path / "app"
    (app / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "config.yml", app)
    shutil.copy(ROOT / "domain.yml", app)
    shutil.copytree(ROOT / "rasa_project", app / "rasa_project", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "scripts/model-name.sh", app / "scripts")
    return app


def model_name(app: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "scripts/model-name.sh", *args], cwd=app, capture_output=True, text=True)


def test_the_rasa_image_copies_the_model_instead_of_training_one() -> None:
    lines = [line.strip() for line in (ROOT / "docker/rasa.Dockerfile").read_text().splitlines()]
    assert not any("rasa train" in line for line in lines if not line.startswith("#"))
    check = lines.index('RUN scripts/model-name.sh --check "$MODEL"')
    copy = lines.index("COPY --chown=reviewbot ${MODEL} models/")
    # The hash is taken over the inputs the image carries, before the model is copied.
    inputs = [lines.index("COPY --chown=reviewbot config.yml domain.yml ./"), lines.index("ARG MODEL")]
    assert max(inputs) < check < copy
    assert "--model models/reviewbot.tar.gz" in lines[-1] and lines[-1].startswith("CMD ")
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    # Docker's last matching pattern wins: the model files come back into the build context.
    assert ignore.index("!models/reviewbot-*.tar.gz") > ignore.index("models")


def test_the_build_check_accepts_only_the_model_of_the_copied_inputs(tmp_path: Path) -> None:
    app = training_inputs(tmp_path)
    named = model_name(app)
    assert named.returncode == 0, named.stderr
    name = named.stdout.strip()
    assert MODEL_NAME.fullmatch(name)
    assert model_name(ROOT).stdout.strip() == name  # the checkout and the image's copy agree
    current = ROOT / "models/current.tar.gz"
    if current.is_symlink():  # `make train` ran: the image would carry the very file it made
        assert f"models/{current.readlink()}" == name
    assert model_name(app, "--check", name).returncode == 0

    missing = model_name(app, "--check", "")
    assert missing.returncode == 1 and f"--build-arg MODEL={name}" in missing.stderr

    story = next((app / "rasa_project/data").rglob("*.yml"))
    story.write_text(story.read_text() + "\n# one more line\n")
    stale = model_name(app, "--check", name)
    assert stale.returncode == 1 and "was not trained on these inputs" in stale.stderr
    assert model_name(app).stdout.strip() != name


def test_the_build_links_the_named_model_and_refuses_a_truncated_one(tmp_path: Path) -> None:
    lines = (ROOT / "docker/rasa.Dockerfile").read_text().splitlines()
    step = next(line.removeprefix("RUN ") for line in lines if line.startswith("RUN ln -s"))
    payload = tmp_path / "metadata.json"
    payload.write_bytes(os.urandom(200_000))
    name = "models/reviewbot-0123456789abcdef.tar.gz"

    def build(app: Path, truncate: bool) -> subprocess.CompletedProcess[str]:
        (app / "models").mkdir(parents=True)
        with tarfile.open(app / name, "w:gz") as archive:
            archive.add(payload, arcname="metadata.json")
        if truncate:
            data = (app / name).read_bytes()
            (app / name).write_bytes(data[: len(data) // 2])
        env = {"PATH": "/usr/bin:/bin", "MODEL": name}
        return subprocess.run(["sh", "-c", step], cwd=app, env=env, capture_output=True, text=True)

    good = build(tmp_path / "good", truncate=False)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "good/models/reviewbot.tar.gz").resolve() == (tmp_path / "good" / name).resolve()
    assert build(tmp_path / "bad", truncate=True).returncode != 0


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_image_model_prints_the_model_file_once_make_train_made_it(tmp_path: Path) -> None:
    app = training_inputs(tmp_path)
    shutil.copy(ROOT / "Makefile", app)
    before = subprocess.run(["make", "-s", "image-model"], cwd=app, capture_output=True, text=True)
    assert before.returncode != 0 and "run make train" in before.stderr
    name = model_name(app).stdout.strip()
    (app / "models").mkdir()
    (app / name).write_bytes(b"model")
    after = subprocess.run(["make", "-s", "image-model"], cwd=app, capture_output=True, text=True)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == name
