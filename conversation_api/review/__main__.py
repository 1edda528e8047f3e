"""`python -m conversation_api.review export [--out FILE]`: write the reviewed examples (make export-reviewed).

Reads DATABASE_URL like the API; prints what it wrote and what it refused, and why.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from conversation_api.db import create_engine, create_session_factory
from conversation_api.review import export as exporting
from conversation_api.review.domain import resolve
from conversation_api.settings import Settings, get_settings


async def run_export(settings: Settings, out: Path) -> exporting.Export:
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            result = await exporting.export(
                session=session, settings=settings.model_copy(update={"review_export_path": str(out)})
            )
    finally:
        await engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(result.yaml(), encoding="utf-8")
    tmp.replace(out)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conversation_api.review", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("export", help="write the confirmed and corrected examples as a Rasa NLU file")
    command.add_argument("--out", default=None, help="the file to write (default REVIEW_EXPORT_PATH)")
    args = parser.parse_args(argv)
    settings = get_settings()
    out = Path(args.out) if args.out else resolve(settings.review_export_path)
    try:
        result = asyncio.run(run_export(settings, out))
    except exporting.HeldOutSetsMissing as exc:
        print(exc.detail, file=sys.stderr)
        return 1
    print(f"wrote {out}: {result.examples} examples in {len(result.by_intent)} intents", file=sys.stderr)
    for refused in result.refused:
        details = " ".join(f"{k}={v}" for k, v in refused.items() if k not in ("message_id", "reason"))
        print(f"  refused message {refused['message_id']}: {refused['reason']} {details}".rstrip(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
