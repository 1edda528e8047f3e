"""Parameter types shared by the routers, bounded so that what the schema allows the code can serve."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator

# PostgreSQL text cannot hold NUL; refused in validation (422) rather than failing in the database (500).
NO_NUL = r"^[^\x00]*$"

# Message ids are PostgreSQL bigints: a larger `before` would fail in the database, not in validation.
BIGINT_MAX = 2**63 - 1

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: object) -> object:
    # Pydantic reads a bare number as seconds since the epoch; the documented format is ISO 8601.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date-time such as 2026-11-25T14:00:00Z, not a number")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_not_a_number)]
