"""FeedbackService on the embedded database."""

from __future__ import annotations

import uuid
from typing import Optional

from sqlalchemy.engine import Connection

from actions.adapters import sql_idempotency
from actions.adapters.sql_db import Database, feedback, translate_errors, utcnow
from actions.adapters.sql_idempotency import once
from actions.ports import Feedback


class SqlFeedbackService:
    def __init__(self, db: Database) -> None:
        self.db = db

    @translate_errors
    def record(self, *, customer_id: str, rating: int, comment: Optional[str],
               conversation_id: Optional[str], idempotency_key: str | None = None) -> Feedback:
        if not 1 <= rating <= 5:
            raise ValueError("rating must be 1-5")

        def work(connection: Connection) -> Feedback:
            feedback_id = str(uuid.uuid4())
            connection.execute(feedback.insert().values(id=feedback_id, customer_id=customer_id, rating=rating,
                                                        comment=comment, conversation_id=conversation_id,
                                                        created_at=utcnow()))
            return Feedback(id=feedback_id, customer_id=customer_id, rating=rating, comment=comment,
                            conversation_id=conversation_id)

        return once(self.db, operation="feedback.record", key=idempotency_key, work=work,
                    decode=sql_idempotency.feedback)
