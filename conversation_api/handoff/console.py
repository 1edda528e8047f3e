"""The CSR console: one static page (HTML and a little JavaScript) served at /console.

The page holds no data; it calls the CSR API with the token the CSR pastes in.
"""

from __future__ import annotations

from pathlib import Path

from conversation_api.console_pages import page_router

router = page_router("/console", Path(__file__).parent / "static" / "console.html")
