"""The package arrows point one way: events/ and metrics/ import no domain package, and no two
packages of the API import each other."""

from __future__ import annotations

import ast
from itertools import combinations
from pathlib import Path

API = Path(__file__).resolve().parents[2] / "conversation_api"
DOMAIN = {"conversations", "handoff", "feedback", "dashboard", "gateway", "turns", "redrive"}


def imports_of(package: str) -> set[str]:
    """The conversation_api modules/packages (first level) that `package` imports, itself excluded."""
    found: set[str] = set()
    root = API / package
    for path in [root.with_suffix(".py")] if root.with_suffix(".py").exists() else root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "conversation_api" and len(parts) > 1 and parts[1] != package:
                    found.add(parts[1])
    return found


def test_events_and_metrics_import_no_domain_package() -> None:
    for package in ("events", "metrics"):
        assert not imports_of(package) & DOMAIN, f"{package}/ imports {sorted(imports_of(package) & DOMAIN)}"


def test_no_two_packages_import_each_other() -> None:
    packages = [p.name for p in API.iterdir() if p.is_dir() and any(p.glob("*.py"))]
    assert {"events", "metrics", "conversations", "handoff", "feedback", "dashboard"} <= set(packages)
    both_ways = [(a, b) for a, b in combinations(sorted(packages), 2) if b in imports_of(a) and a in imports_of(b)]
    assert both_ways == []


def test_connectors_are_edges_that_call_the_gateway() -> None:
    """No connector runs SQL on the API's tables or calls a domain service: it goes through the gateway."""
    import re

    connectors = API.parent / "connectors"
    table_sql = re.compile(
        r"\b(select|update|insert|delete)\((Message|Conversation)\b|session\.get\((Message|Conversation)\b"
    )
    offenders: list[str] = []
    for path in connectors.rglob("*.py"):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
            if module.startswith("conversation_api.") and module.endswith((".service", ".router")):
                offenders.append(f"{path.relative_to(connectors)} imports {module}")
        offenders += [f"{path.relative_to(connectors)}: {m.group(0)}" for m in table_sql.finditer(source)]
    assert offenders == []
