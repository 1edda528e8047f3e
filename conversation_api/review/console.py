"""The review console: one static page at /console/review for designers (and admins).

The page holds no data; it calls the review API with the token the designer pastes in.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = Path(__file__).parent / "static" / "review.html"

router = APIRouter(include_in_schema=False)


@cache
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@router.get("/console/review", response_class=HTMLResponse)
async def review_console() -> HTMLResponse:
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache", "X-Frame-Options": "DENY"})
