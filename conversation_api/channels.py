"""Outbound delivery: how a message that did not come back in an HTTP response reaches the customer.

A CSR's reply, or a bot reply produced by a background worker, is delivered
through the customer's channel. API clients read their history (nothing to
push); WhatsApp conversations are pushed through the Graph API adapter.
"""

from __future__ import annotations

from typing import Protocol

from conversation_api.conversations.models import Conversation, Message


class OutboundChannel(Protocol):
    async def deliver(self, *, conversation: Conversation, message: Message) -> None:
        """Send `message` to the customer of `conversation`; raise on a failure worth retrying."""
        ...


class PollingChannel:
    """API clients fetch new messages with GET /api/v1/user/{user_id}/messages/{conversation_id}."""

    async def deliver(self, *, conversation: Conversation, message: Message) -> None:
        return None


class ChannelRegistry:
    def __init__(self) -> None:
        self._channels: dict[str, OutboundChannel] = {"api": PollingChannel()}

    def register(self, name: str, channel: OutboundChannel) -> None:
        self._channels[name] = channel

    def for_conversation(self, conversation: Conversation) -> OutboundChannel:
        return self._channels.get(conversation.channel, self._channels["api"])
