"""X-Hub-Signature-256: HMAC-SHA256 of the raw request bytes, keyed with the app secret."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The header value Meta sends for `body` (also used by the tests and the benchmark)."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_valid(body: bytes, header: str, secret: str) -> bool:
    """Constant-time check of `header` against the raw bytes; never re-serialise the JSON before this."""
    expected = sign(body, secret)
    # compare_digest on bytes: a non-ASCII header must fail, not raise.
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))
