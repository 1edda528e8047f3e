"""GET /api/v1/metrics/summary: the seed's business figures for a period (admins), read from the database.

A reader of the domain's tables, so it lives beside them rather than in metrics/,
which the domain packages write to and which imports none of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from conversation_api.auth import Role
from conversation_api.dashboard import summary as figures
from conversation_api.deps import ContainerDep, CurrentUser, SessionDep
from conversation_api.errors import ApiError, Forbidden
from conversation_api.params import IsoDateTime
from conversation_api.review.backlog import criteria_of

router = APIRouter(tags=["metrics"])


class InvalidPeriod(ApiError):
    status_code = 422
    code = "invalid_period"


class MetricsSummary(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-11-01T00:00:00Z",
                    "to": "2026-11-25T00:00:00Z",
                    "messages": {
                        "total": 1840,
                        "by_sender": {"user": 900, "bot": 910, "csr": 30},
                        "by_channel": {"api": 1200, "whatsapp": 640},
                        "conversations": 210,
                    },
                    "sessions": {"count": 260, "ended": 250, "average_duration_seconds": 184.2},
                    "bot_response": {"replies": 880, "average_seconds": 0.31},
                    "workflows": {"booking": {"succeeded": 40, "failed": 2, "success_rate": 0.952}},
                    "csat": {
                        "responses": 35,
                        "average_rating": 4.3,
                        "satisfied_share": 0.83,
                        "distribution": {"1": 1, "2": 1, "3": 4, "4": 9, "5": 20},
                    },
                    "handoff": {"conversations": 12, "rate": 0.057},
                    "errors": {"bot_unavailable": 3, "rate": 0.003},
                    "review": {"customer_messages": 900, "needing_review": 61, "share": 0.0678},
                }
            ]
        }
    )

    from_: datetime = Field(alias="from")
    to: datetime
    messages: dict[str, Any] = Field(
        description="`total`, `by_sender` (user/bot/csr), `by_channel`, and active `conversations`."
    )
    sessions: dict[str, Any] = Field(
        description="Sessions started in the period: `count`, `ended`, `average_duration_seconds`."
    )
    bot_response: dict[str, Any] = Field(
        description="Customer messages the bot answered (`replies`) and the `average_seconds` to the reply."
    )
    workflows: dict[str, Any] = Field(
        description="Per workflow: `succeeded`, `failed`, `success_rate` (from the actions' reports)."
    )
    csat: dict[str, Any] = Field(
        description="`responses`, `average_rating` (1-5), `satisfied_share` (4-5), `distribution`."
    )
    handoff: dict[str, Any] = Field(
        description="`conversations` that asked for a human, and `rate` = those / active conversations."
    )
    errors: dict[str, Any] = Field(
        description="`bot_unavailable`: customer messages the bot failed to answer; `rate` = those / messages "
        "sent to the bot."
    )
    review: dict[str, Any] = Field(
        description="Customer messages of the period (`customer_messages`), how many met a review criterion "
        "(`needing_review`, reviewed since or not) and their `share`."
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@router.get(
    "/api/v1/metrics/summary",
    response_model=MetricsSummary,
    response_model_by_alias=True,
    responses={
        401: {"description": "Missing, expired or forged token."},
        403: {"description": "Only admins read the summary."},
        422: {"description": "`from` is not before `to`, or a date is malformed."},
        503: {"description": "The database is unavailable (`database_unavailable`)."},
    },
)
async def metrics_summary(
    principal: CurrentUser,
    session: SessionDep,
    container: ContainerDep,
    from_: Annotated[
        IsoDateTime | None, Query(alias="from", description="Start (inclusive), ISO 8601; default `to` - 7 days.")
    ] = None,
    to: Annotated[IsoDateTime | None, Query(description="End (exclusive), ISO 8601; default now. Naive = UTC.")] = None,
) -> dict[str, Any]:
    """The seed's business figures for a period, computed from the database."""
    if principal.role is not Role.admin:
        raise Forbidden("only admins may read the metrics summary")
    end = _utc(to) if to else datetime.now(UTC)
    start = _utc(from_) if from_ else end - timedelta(days=7)
    if start >= end:
        raise InvalidPeriod("`from` must be before `to`", **{"from": start.isoformat(), "to": end.isoformat()})
    return await figures.summary(session=session, start=start, end=end, review_criteria=criteria_of(container.settings))
