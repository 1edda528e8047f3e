"""Mint a development token: `python -m conversation_api.tokens --user alice --role client`."""

from __future__ import annotations

import argparse

from conversation_api.auth import Role, mint_token
from conversation_api.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", required=True, help="the token's subject (user id)")
    parser.add_argument("--role", default=Role.client.value, choices=[r.value for r in Role])
    parser.add_argument("--ttl", type=int, default=None, help="lifetime in seconds (default JWT_TTL_SECONDS)")
    args = parser.parse_args(argv)
    settings = get_settings()
    print(
        mint_token(
            secret=settings.jwt_secret,
            user_id=args.user,
            role=args.role,
            ttl_seconds=args.ttl or settings.jwt_ttl_seconds,
        )
    )


if __name__ == "__main__":
    main()
