"""The review console: one static page at /console/review for designers (and admins).

The page holds no data; it calls the review API with the token the designer pastes in.
"""

from __future__ import annotations

from pathlib import Path

from conversation_api.console_pages import page_router

router = page_router("/console/review", Path(__file__).parent / "static" / "review.html")
