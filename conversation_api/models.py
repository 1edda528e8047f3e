"""Imports every table module so Base.metadata is complete (for Alembic and tests)."""

from conversation_api.conversations.models import Conversation, Message
from conversation_api.handoff.models import ConversationHandoff, HandoffTransition

__all__ = ["Conversation", "ConversationHandoff", "HandoffTransition", "Message"]
