"""Imports every table module so Base.metadata is complete (for Alembic and tests)."""

from connectors.whatsapp.models import WhatsAppContact, WhatsAppInbound, WhatsAppOutbound, WhatsAppStatus
from conversation_api.conversations.models import Conversation, Message
from conversation_api.events.crm_sync import CustomerProfile
from conversation_api.events.outbox import OutboxEvent
from conversation_api.feedback.models import Feedback
from conversation_api.handoff.models import ConversationHandoff, HandoffTransition
from conversation_api.metrics.sessions import ConversationSession
from conversation_api.reminders.models import AppointmentReminder
from conversation_api.review.models import ReviewAnnotation, ReviewDecision, ReviewFlag

__all__ = [
    "AppointmentReminder",
    "Conversation",
    "ConversationHandoff",
    "ConversationSession",
    "CustomerProfile",
    "Feedback",
    "HandoffTransition",
    "Message",
    "OutboxEvent",
    "ReviewAnnotation",
    "ReviewDecision",
    "ReviewFlag",
    "WhatsAppContact",
    "WhatsAppInbound",
    "WhatsAppOutbound",
    "WhatsAppStatus",
]
