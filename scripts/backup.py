"""Back up and restore ReviewBot's databases: `make backup`, `make restore BACKUP=path`.

    python scripts/backup.py backup            # prints the new backup's path
    python scripts/backup.py restore PATH

What is backed up is everything the stack cannot rebuild (docs/operations.md says why Redis is not
in it): the API's database (conversations, messages, handoffs, the outbox, the business tables of
actions/adapters/sql_db.py) and Rasa's tracker store (dialogue state, connectors/rasa/stores.py).

- Embedded SQLite default: each file is copied with SQLite's online backup API, so a copy taken
  while the stack runs is consistent (a plain `cp` of a database in WAL mode is not).
- PostgreSQL: `pg_dump --format=custom` of the schema in use (DATABASE_SCHEMA, `public` when
  unset), plus the tracker's when TRACKER_DATABASE_URL/TRACKER_DATABASE_SCHEMA put it elsewhere;
  restored by dropping the schema and replaying the dump (`pg_restore --clean --if-exists` into
  `psql --single-transaction`), so the schema ends as it was backed up, or, on any error, unchanged.

A backup is one tar file, `BACKUP_DIR/reviewbot-<kind>-<UTC timestamp>.tar`, holding a
`manifest.json` and one file per store. Restore refuses a backup of the other kind.
Restore while the API, Rasa and the action server are stopped: they cache connections and
dialogue state that a restore replaces underneath them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conversation_api.settings import Settings  # noqa: E402

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class Store:
    """One database the stack writes: the API's (`api`) or Rasa's tracker store (`tracker`)."""

    name: str
    kind: str  # "sqlite" or "postgresql"
    location: str  # SQLite file path, or a libpq connection URI
    schema: str | None = None


def stores(settings: Settings, env: dict[str, str]) -> list[Store]:
    """The databases these settings use, the tracker's derived as connectors/rasa/stores.py does."""
    api = store_for("api", settings.database_url, settings.database_schema)
    tracker_url = (env.get("TRACKER_DATABASE_URL") or "").strip()
    tracker_schema = (env.get("TRACKER_DATABASE_SCHEMA") or "").strip() or None
    if api.kind == "sqlite":
        if tracker_url:
            tracker = store_for("tracker", tracker_url, tracker_schema)
        else:
            # reviewbot.db -> reviewbot-tracker.db, beside it (connectors.rasa.stores.tracker_database_url).
            file = Path(api.location)
            tracker = Store("tracker", "sqlite", str(file.with_name(f"{file.stem}-tracker{file.suffix or '.db'}")))
        return [api, tracker]
    tracker = store_for("tracker", tracker_url or settings.database_url, tracker_schema or api.schema)
    # On PostgreSQL the tracker table sits in the API's schema unless told otherwise: one dump holds both.
    same = (tracker.location, tracker.schema or "public") == (api.location, api.schema or "public")
    return [api] if same else [api, tracker]


def store_for(name: str, url: str, schema: str | None) -> Store:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise BackupError(f"{name}: cannot read the database URL {url!r}")
    driver = scheme.split("+")[0]
    if driver == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if path in ("", ":memory:"):
            raise BackupError(f"{name}: an in-memory SQLite database has nothing to back up")
        return Store(name, "sqlite", path)
    if driver in ("postgresql", "postgres"):
        return Store(name, "postgresql", f"postgresql://{rest}", schema)
    raise BackupError(f"{name}: backups support SQLite and PostgreSQL, not {driver}")


def backup(settings: Settings, env: dict[str, str], directory: Path) -> Path:
    """Write one backup of every store into `directory`; return its path."""
    targets = stores(settings, env)
    kind = targets[0].kind
    created = datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"reviewbot-{kind}-{created:%Y%m%dT%H%M%S%fZ}.tar"
    manifest: dict[str, object] = {"format": FORMAT_VERSION, "kind": kind, "created_at": created.isoformat()}
    entries: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="reviewbot-backup-") as work:
        for store in targets:
            if store.kind == "sqlite":
                if not Path(store.location).is_file():
                    # The tracker file appears when Rasa first starts; a stack that never ran has none.
                    if store.name == "api":
                        raise BackupError(f"api: no database at {store.location} (run `make migrate` first?)")
                    continue
                member = f"{store.name}.db"
                sqlite_copy(store.location, str(Path(work) / member))
            else:
                member = f"{store.name}.dump"
                pg_dump(store, Path(work) / member)
            entries.append({"store": store.name, "file": member, "schema": store.schema})
        manifest["stores"] = entries
        (Path(work) / MANIFEST).write_text(json.dumps(manifest, indent=2))
        partial = path.with_suffix(".tar.partial")
        with tarfile.open(partial, "w") as archive:
            for name in [MANIFEST, *(str(entry["file"]) for entry in entries)]:
                archive.add(Path(work) / name, arcname=name)
        # Renamed only when complete, so a backup in BACKUP_DIR is never a half-written one.
        partial.rename(path)
    return path


def restore(settings: Settings, env: dict[str, str], path: Path) -> list[str]:
    """Replace every store's contents with the backup's; return the names of the stores restored."""
    if not path.is_file():
        raise BackupError(f"no backup at {path} (give BACKUP=backups/reviewbot-….tar)")
    if not tarfile.is_tarfile(path):
        raise BackupError(f"{path} is not a ReviewBot backup (not a tar file)")
    targets = {store.name: store for store in stores(settings, env)}
    kind = next(iter(targets.values())).kind
    with tempfile.TemporaryDirectory(prefix="reviewbot-restore-") as work, tarfile.open(path) as archive:
        try:
            manifest = json.loads(archive.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        except (KeyError, AttributeError, json.JSONDecodeError) as exc:
            raise BackupError(f"{path} is not a ReviewBot backup (no readable {MANIFEST})") from exc
        if manifest.get("kind") != kind:
            raise BackupError(
                f"{path} is a {manifest.get('kind')} backup but DATABASE_URL is {kind}: "
                "restore it into a stack of the same kind"
            )
        plan = [(entry, target_of(entry, targets, kind, path)) for entry in manifest["stores"]]
        archive.extractall(work, filter="data")
        restored = []
        for entry, store in plan:
            source = Path(work) / entry["file"]
            if kind == "sqlite":
                Path(store.location).parent.mkdir(parents=True, exist_ok=True)
                sqlite_copy(str(source), store.location)
            else:
                pg_restore(store, source)
            restored.append(entry["store"])
    return restored


def target_of(entry: dict[str, str], targets: dict[str, Store], kind: str, path: Path) -> Store:
    """The store a backup's entry goes into, checked before anything is overwritten."""
    store = targets.get(entry["store"])
    if store is None:
        # The tracker had a schema of its own then and shares the API's now: same database.
        store = targets["api"]
    if kind == "postgresql" and (entry.get("schema") or "public") != (store.schema or "public"):
        # A custom-format dump recreates the schema it was taken from, whatever DATABASE_SCHEMA says.
        raise BackupError(
            f"{path} holds schema {entry.get('schema') or 'public'} but {store.name} uses "
            f"{store.schema or 'public'}: set DATABASE_SCHEMA to the backup's schema"
        )
    return store


def sqlite_copy(source: str, target: str) -> None:
    """Copy a SQLite database page by page with its online backup API (consistent while in use)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def pg_dump(store: Store, target: Path) -> None:
    command = [tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges"]
    command += ["--schema", store.schema or "public", "--file", str(target), "--dbname", store.location]
    run(command, store)


def pg_restore(store: Store, source: Path) -> None:
    """Make the schema exactly the dump's, in one transaction: all of it or, on any error, nothing."""
    schema = (store.schema or "public").replace('"', '""')
    restore_sql = [tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--file=-"]
    apply_sql = [tool("psql"), "--no-psqlrc", "--quiet", "--single-transaction", "-v", "ON_ERROR_STOP=1"]
    apply_sql += ["--dbname", store.location]
    with tempfile.TemporaryFile("w+b") as errors:
        producer = subprocess.Popen([*restore_sql, str(source)], stdout=subprocess.PIPE, stderr=errors)
        consumer = subprocess.Popen(apply_sql, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
        assert producer.stdout is not None and consumer.stdin is not None
        # pg_restore --clean drops only what the dump has: tables created since (a newer migration's)
        # would keep the schema from being dropped and stay behind. CASCADE takes them too.
        try:
            consumer.stdin.write(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE;\n'.encode())
            shutil.copyfileobj(producer.stdout, consumer.stdin)
        except BrokenPipeError:  # psql stopped at an error (ON_ERROR_STOP) and rolled back
            pass
        if producer.wait() != 0:
            # Killed before the end of its input, psql never commits: the DROP above is rolled back.
            consumer.kill()
            consumer.wait()
            failed = True
        else:
            with contextlib.suppress(BrokenPipeError):
                consumer.stdin.close()
            failed = consumer.wait() != 0
        if failed:
            errors.seek(0)
            raise BackupError(f"{store.name}: restore failed, nothing changed: {errors.read().decode().strip()}")


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} is not on PATH: install the PostgreSQL client (postgresql-client)")
    return found


def run(command: list[str], store: Store) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{store.name}: {Path(command[0]).name} failed: {result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backup", help="back up into BACKUP_DIR (default backups/)")
    restore_parser = commands.add_parser("restore", help="restore the backup at PATH")
    restore_parser.add_argument("path", nargs="?", default="", help="the backup file (make restore BACKUP=path)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    started = time.monotonic()
    try:
        settings = Settings()
        if args.command == "backup":
            path = backup(settings, env, Path(env.get("BACKUP_DIR") or "backups"))
            print(f"backup written path={path} seconds={time.monotonic() - started:.2f}", file=sys.stderr)
            print(path)
        else:
            if not args.path:
                raise BackupError("which backup? give BACKUP=backups/reviewbot-….tar")
            restored = restore(settings, env, Path(args.path))
            print(
                f"restored path={args.path} stores={','.join(restored)} seconds={time.monotonic() - started:.2f}",
                file=sys.stderr,
            )
    except BackupError as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
