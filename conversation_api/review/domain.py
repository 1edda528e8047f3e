"""The intents and entities a reviewer may choose: the bot's own, read from its domain.yml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from conversation_api.errors import ApiError

ROOT = Path(__file__).resolve().parents[2]
# What the bot predicts when it did not understand: never a label a reviewer gives.
NOT_A_LABEL = {"nlu_fallback"}


class DomainUnavailable(ApiError):
    status_code = 503
    code = "domain_unavailable"


@dataclass(frozen=True, slots=True)
class Domain:
    intents: tuple[str, ...]
    entities: tuple[str, ...]


def resolve(path: str) -> Path:
    """A setting's path: absolute, or relative to the working directory, else to the project root."""
    given = Path(path)
    if given.is_absolute() or given.exists():
        return given
    return ROOT / given


_cache: dict[Path, tuple[float, Domain]] = {}


def load(path: str) -> Domain:
    """The domain's intents (without nlu_fallback) and entities; re-read when the file changes."""
    file = resolve(path)
    try:
        mtime = file.stat().st_mtime
        cached = _cache.get(file)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DomainUnavailable(f"the bot's domain ({file}) could not be read: {type(exc).__name__}") from exc
    intents = tuple(_names(data.get("intents")) - NOT_A_LABEL)
    domain = Domain(intents=tuple(sorted(intents)), entities=tuple(sorted(_names(data.get("entities")))))
    _cache[file] = (mtime, domain)
    return domain


def _names(items: object) -> set[str]:
    # Rasa allows `- name` and `- name: {options}`.
    names: set[str] = set()
    for item in items or []:  # type: ignore[attr-defined]
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, dict):
            names.update(str(key) for key in item)
    return names
