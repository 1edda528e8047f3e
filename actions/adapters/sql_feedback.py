"""FeedbackService on the embedded database."""

from __future__ import annotations

import uuid
from typing import Optional

from actions.adapters.sql_db import Database, feedback, translate_errors, utcnow
from actions.ports import Feedback


class SqlFeedbackService:
    def __init__(self, db: Database) -> None:
        self.db = db

    @translate_errors
    def record(self, *, customer_id: str, rating: int, comment: Optional[str],
               conversation_id: Optional[str]) -> Feedback:
        if not 1 <= rating <= 5:
            raise ValueError("rating must be 1-5")
        feedback_id = str(uuid.uuid4())
        with self.db.begin() as connection:
            connection.execute(feedback.insert().values(id=feedback_id, customer_id=customer_id, rating=rating,
                                                        comment=comment, conversation_id=conversation_id,
                                                        created_at=utcnow()))
        return Feedback(id=feedback_id, customer_id=customer_id, rating=rating, comment=comment,
                        conversation_id=conversation_id)
