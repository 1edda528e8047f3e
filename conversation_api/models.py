"""Imports every table module so Base.metadata is complete (for Alembic and tests)."""

from conversation_api.conversations.models import Conversation, Message

__all__ = ["Conversation", "Message"]
