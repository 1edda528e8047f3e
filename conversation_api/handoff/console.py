"""The CSR console: one static page (HTML and a little JavaScript) served at /console.

The page holds no data; it calls the CSR API with the token the CSR pastes in.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = Path(__file__).parent / "static" / "console.html"

router = APIRouter(include_in_schema=False)


@cache
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@router.get("/console", response_class=HTMLResponse)
async def console() -> HTMLResponse:
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache", "X-Frame-Options": "DENY"})
