"""Outbound delivery: how a message that did not come back in an HTTP response reaches the customer.

A CSR's reply, or a bot reply produced by a background worker, is delivered
through the customer's channel. API clients read their history (nothing to
push); WhatsApp conversations are pushed through the Graph API adapter.

Some channels limit what may be sent: WhatsApp delivers free text only inside the
24-hour customer service window, and approved templates at any time. `state` tells
the CSR API (and the console) where a conversation stands; `prepare_template`
checks a template send before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from conversation_api.conversations.models import Conversation, Message
from conversation_api.errors import ApiError


@dataclass(frozen=True, slots=True)
class TemplateOption:
    """A template a CSR may pick, with what it needs; `usable` is False with the `reason` when it may not be sent."""

    name: str
    language: str
    category: str
    body: str
    parameters: list[str]
    buttons: list[str]
    usable: bool
    reason: str | None = None
    status: str | None = None  # Meta's last word on it (APPROVED, PAUSED...), None before any
    quality: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """What may be sent to a conversation's customer now."""

    channel: str
    free_text: bool  # a free-text reply would be delivered now
    window_closes_at: datetime | None = None  # WhatsApp: 24 h after the customer's last message
    last_inbound_at: datetime | None = None
    sends_from: str | None = None  # the business number replies go out from (its display name)
    opted_out: bool = False  # the customer opted out of business-initiated messages
    opted_out_of: str | None = None  # what: "marketing" (Meta's stop) or "all" (the customer's STOP)
    opted_out_at: datetime | None = None
    templates: list[TemplateOption] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PreparedTemplate:
    """A checked template send: the text the conversation stores and the payload the channel sends it from."""

    text: str
    payload: dict[str, Any]


class OutsideServiceWindow(ApiError):
    """Free text to a customer whose service window is closed: only a template can reach them."""

    status_code = 409
    code = "outside_service_window"


class TemplateUnknown(ApiError):
    status_code = 422
    code = "template_unknown"


class TemplateParametersInvalid(ApiError):
    status_code = 422
    code = "template_parameters_invalid"


class TemplateNotApproved(ApiError):
    """Meta has paused, disabled or rejected the template: WhatsApp would refuse it."""

    status_code = 409
    code = "template_not_approved"


class CustomerOptedOut(ApiError):
    """The customer opted out; this category of template may not be sent to them."""

    status_code = 409
    code = "customer_opted_out"


class TemplatesNotSupported(ApiError):
    status_code = 409
    code = "templates_not_supported"


class OutboundChannel(Protocol):
    async def deliver(self, *, conversation: Conversation, message: Message) -> None:
        """Send `message` to the customer of `conversation`; raise on a failure worth retrying."""
        ...

    async def state(self, *, conversation: Conversation) -> DeliveryState:
        """Whether free text reaches the customer now, and the templates a CSR may send instead."""
        ...

    async def prepare_template(
        self, *, conversation: Conversation, name: str, language: str | None, parameters: dict[str, Any]
    ) -> PreparedTemplate:
        """Check a template send (known, approved, parameters, consent); raise a typed ApiError if it may not go."""
        ...


class PollingChannel:
    """API clients fetch new messages with GET /api/v1/user/{user_id}/messages/{conversation_id}."""

    async def deliver(self, *, conversation: Conversation, message: Message) -> None:
        return None

    async def state(self, *, conversation: Conversation) -> DeliveryState:
        return DeliveryState(channel=conversation.channel, free_text=True)

    async def prepare_template(
        self, *, conversation: Conversation, name: str, language: str | None, parameters: dict[str, Any]
    ) -> PreparedTemplate:
        raise TemplatesNotSupported(
            f"{conversation.channel} conversations have no message templates; reply with a message",
            conversation_id=conversation.id,
        )


class ChannelRegistry:
    def __init__(self) -> None:
        self._channels: dict[str, OutboundChannel] = {"api": PollingChannel()}

    def register(self, name: str, channel: OutboundChannel) -> None:
        self._channels[name] = channel

    def for_conversation(self, conversation: Conversation) -> OutboundChannel:
        return self._channels.get(conversation.channel, self._channels["api"])
