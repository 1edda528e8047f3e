"""The gateway with a fake bot on a throwaway SQLite database."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from conversation_api.conversations.models import Conversation, HandoffState, Message, Sender
from conversation_api.db import create_engine, create_session_factory
from conversation_api.errors import BotUnavailableError, ConversationNotFound
from conversation_api.gateway import MessageGateway
from conversation_api.locks import InProcessLocks
from conversation_api.settings import Settings
from tests.support.fakes import FakeBot


@pytest.fixture
async def sessions(sqlite_db_settings: Settings) -> AsyncIterator:
    engine = create_engine(sqlite_db_settings)
    yield create_session_factory(engine)
    await engine.dispose()


async def stored(sessions, conversation_id: str) -> list[Message]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        )
        return list(rows)


async def test_first_message_starts_a_conversation_and_stores_both_sides(sessions) -> None:
    bot = FakeBot()
    gateway = MessageGateway(sessions=sessions, bot=bot, locks=InProcessLocks())
    reply = await gateway.handle(user_id="alice", conversation_id=None, text="hi there")

    assert reply.text == "echo: hi there\npick one"
    assert bot.calls == [
        {
            "sender_id": reply.conversation_id,
            "text": "hi there",
            # The stored message's id travels to the bot: the actions do each side effect once per message.
            "metadata": {"user_id": "alice", "channel": "api", "message_id": reply.user_message_id},
        }
    ]
    messages = await stored(sessions, reply.conversation_id)
    assert [(m.sender, m.text) for m in messages] == [
        (Sender.user, "hi there"),
        (Sender.bot, "echo: hi there"),
        (Sender.bot, "pick one"),
    ]
    assert (messages[0].intent, messages[0].confidence) == ("echo", 0.9)
    assert messages[0].entities == [{"entity": "word", "value": "hi"}]
    assert messages[2].payload == {"buttons": [{"title": "Yes", "payload": "/affirm"}]}


async def test_bot_failure_keeps_the_user_message(sessions) -> None:
    gateway = MessageGateway(sessions=sessions, bot=FakeBot(fail=True), locks=InProcessLocks())
    with pytest.raises(BotUnavailableError) as caught:
        await gateway.handle(user_id="alice", conversation_id=None, text="anyone?")
    conversation_id = caught.value.extra["conversation_id"]
    messages = await stored(sessions, conversation_id)
    assert [(m.sender, m.text, m.id) for m in messages] == [(Sender.user, "anyone?", caught.value.extra["message_id"])]


async def test_unknown_and_foreign_conversations_are_not_found(sessions) -> None:
    gateway = MessageGateway(sessions=sessions, bot=FakeBot(), locks=InProcessLocks())
    first = await gateway.handle(user_id="alice", conversation_id=None, text="hello")
    with pytest.raises(ConversationNotFound):
        await gateway.handle(user_id="mallory", conversation_id=first.conversation_id, text="let me in")
    with pytest.raises(ConversationNotFound):
        await gateway.handle(user_id="alice", conversation_id="no-such-conversation", text="hello")
    assert len(await stored(sessions, first.conversation_id)) == 3


async def test_a_conversation_with_a_human_is_not_sent_to_the_bot(sessions) -> None:
    bot = FakeBot()
    gateway = MessageGateway(sessions=sessions, bot=bot, locks=InProcessLocks())
    first = await gateway.handle(user_id="alice", conversation_id=None, text="hello")
    async with sessions() as session, session.begin():
        conversation = await session.get(Conversation, first.conversation_id)
        conversation.handoff_state = HandoffState.pending_human
    reply = await gateway.handle(user_id="alice", conversation_id=first.conversation_id, text="still there?")
    assert (reply.text, reply.handoff_state) == ("", HandoffState.pending_human)
    assert len(bot.calls) == 1
    assert [m.text for m in await stored(sessions, first.conversation_id)][-1] == "still there?"


async def test_concurrent_messages_to_one_conversation_are_serialised(sessions) -> None:
    gateway = MessageGateway(sessions=sessions, bot=FakeBot(max_delay=0.02), locks=InProcessLocks())
    first = await gateway.handle(user_id="alice", conversation_id=None, text="m0")
    texts = [f"m{i}" for i in range(1, 11)]
    replies = await asyncio.gather(
        *(gateway.handle(user_id="alice", conversation_id=first.conversation_id, text=t) for t in texts)
    )
    assert [r.text.splitlines()[0] for r in replies] == [f"echo: {t}" for t in texts]
    messages = await stored(sessions, first.conversation_id)
    # Every user message is followed directly by its own two replies: nothing interleaves.
    triples = [messages[i : i + 3] for i in range(0, len(messages), 3)]
    assert len(triples) == 11
    for user, echo, buttons in triples:
        assert user.sender is Sender.user
        assert echo.text == f"echo: {user.text}"
        assert buttons.text == "pick one"


async def test_a_bot_that_says_paused_while_the_conversation_is_the_bots_is_resumed(sessions) -> None:
    """Rasa missed a resume (the conversation came back from a human while Rasa was down): repaired, counted."""
    from dataclasses import replace

    from conversation_api.metrics.instruments import BOT_PAUSE_REPAIRED

    class PausedBot(FakeBot):
        async def send(self, **kwargs):  # type: ignore[no-untyped-def]
            return replace(await super().send(**kwargs), paused=True)

    bot = PausedBot()
    before = BOT_PAUSE_REPAIRED._value.get()
    reply = await MessageGateway(sessions=sessions, bot=bot, locks=InProcessLocks()).handle(
        user_id="alice", conversation_id=None, text="hello?"
    )
    assert bot.control == [("resume", reply.conversation_id)]
    assert BOT_PAUSE_REPAIRED._value.get() == before + 1
