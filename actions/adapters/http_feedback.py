"""FeedbackService over the REST contract in docs/business-services.openapi.yml (tag feedback)."""

from __future__ import annotations

from typing import Optional

from actions.adapters.http_client import JsonClient
from actions.ports import Feedback, ServiceUnavailable


class HttpFeedbackService:
    def __init__(self, client: JsonClient) -> None:
        self.client = client

    def record(self, *, customer_id: str, rating: int, comment: Optional[str],
               conversation_id: Optional[str], idempotency_key: str | None = None) -> Feedback:
        body = self.client.request("POST", "/feedback", json={
            "customer_id": customer_id, "rating": rating, "comment": comment, "conversation_id": conversation_id},
            idempotency_key=idempotency_key)
        try:
            return Feedback(id=body["id"], customer_id=body["customer_id"], rating=int(body["rating"]),
                            comment=body.get("comment"), conversation_id=body.get("conversation_id"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceUnavailable("the feedback service sent an incomplete record") from exc
