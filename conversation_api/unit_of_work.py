"""One conversation unit of work: lock, transactions, outbox, then the after-commit effects.

Every writer of a conversation (the gateway, the CSR routes, the handoff sweeper,
the re-driver, the review's decisions and flags) goes through `ConversationUnitOfWork.conversation`:

    async with uow.conversation(conversation_id) as work:
        async with work.transaction():
            ...  # writes through work.session; outbox rows in the same transaction
            work.after_commit(effect)  # runs once this transaction commits, still under the lock

The lock is held for the whole block, across transactions and the bot call in
between, so the turns of one conversation run one at a time in arrival order. On
PostgreSQL the session writes on the connection that holds the lock: a write can
only commit while the lock is held. A transaction that raises rolls back and its
effects are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from conversation_api.locks import ConversationLocks, LockSpace

log = logging.getLogger(__name__)

Effect = Callable[[], Awaitable[Any]]


class ConversationWork:
    def __init__(self, session: AsyncSession, conversation_id: str) -> None:
        self.session = session
        self.conversation_id = conversation_id
        self._effects: list[Effect] | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits when the block ends (rolls back if it raises), then runs its effects."""
        self._effects = []
        try:
            async with self.session.begin():
                yield self.session
            effects, self._effects = self._effects, None
        except BaseException:
            self._effects = None
            raise
        for effect in effects:
            await effect()

    def after_commit(self, effect: Effect) -> None:
        """Run `effect` after the current transaction commits (a bot pause, a channel delivery)."""
        if self._effects is None:
            raise RuntimeError("after_commit outside a transaction")
        self._effects.append(effect)


class ConversationUnitOfWork:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], locks: ConversationLocks) -> None:
        self._sessions = sessions
        self._locks = locks

    @property
    def locks(self) -> ConversationLocks:
        return self._locks

    @asynccontextmanager
    async def conversation(self, conversation_id: str) -> AsyncIterator[ConversationWork]:
        """Hold the conversation's lock for the block and give it a session that writes under it."""
        async with (
            self._locks.hold(conversation_id, LockSpace.conversation) as connection,
            self._session(connection) as session,
        ):
            yield ConversationWork(session, conversation_id)

    @asynccontextmanager
    async def key(self, key: str, space: LockSpace) -> AsyncIterator[None]:
        """Serialise on something that is not a conversation yet (a client's message id)."""
        async with self._locks.hold(key, space):
            yield

    def _session(self, connection: AsyncConnection | None) -> AsyncSession:
        if connection is None:
            return self._sessions()
        return AsyncSession(bind=connection, expire_on_commit=False)
