"""The staff consoles' static pages: HTML and a little JavaScript, holding no data of their own.

Each page calls its API with the token its user pastes in. The helpers both pages use
(`static/console_common.js`) are put inline where a page has the `/* console_common.js */` marker,
so each console stays one request and one path (the Ingress routes exactly those paths).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

COMMON = Path(__file__).parent / "static" / "console_common.js"
MARKER = "/* console_common.js */"


@cache
def _page(page: Path) -> str:
    return page.read_text(encoding="utf-8").replace(MARKER, COMMON.read_text(encoding="utf-8"))


def page_router(route: str, page: Path) -> APIRouter:
    """A router that serves `page` at `route`, uncached by browsers and never framed."""
    router = APIRouter(include_in_schema=False)

    @router.get(route, response_class=HTMLResponse)
    async def console_page() -> HTMLResponse:
        return HTMLResponse(_page(page), headers={"Cache-Control": "no-cache", "X-Frame-Options": "DENY"})

    return router
