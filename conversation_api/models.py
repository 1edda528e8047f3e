"""Imports every table module so Base.metadata is complete (for Alembic and tests)."""

from connectors.whatsapp.models import WhatsAppContact, WhatsAppInbound, WhatsAppOutbound, WhatsAppStatus
from conversation_api.conversations.models import Conversation, Message

__all__ = ["Conversation", "Message", "WhatsAppContact", "WhatsAppInbound", "WhatsAppOutbound", "WhatsAppStatus"]
