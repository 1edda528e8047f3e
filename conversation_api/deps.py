"""Dependency aliases so routes read like prose."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from conversation_api.auth import Principal, Role
from conversation_api.container import Container
from conversation_api.errors import Forbidden, NotAuthenticated
from conversation_api.gateway import MessageGateway

_bearer = HTTPBearer(auto_error=False, description="A JWT minted with `make token`.")

# Dependencies are `async def` although they do not await: FastAPI runs plain `def` ones in its
# thread pool, a thread hop per dependency on every request for work that takes microseconds.


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_session(container: ContainerDep) -> AsyncIterator[AsyncSession]:
    async with container.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_gateway(container: ContainerDep) -> MessageGateway:
    return container.gateway


GatewayDep = Annotated[MessageGateway, Depends(get_gateway)]


async def current_principal(
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise NotAuthenticated("missing bearer token (Authorization: Bearer <JWT>)")
    return container.tokens.decode(credentials.credentials)


CurrentUser = Annotated[Principal, Depends(current_principal)]


def may_read_user(principal: Principal, user_id: str) -> None:
    """Clients read only their own data; CSRs and admins read any customer's."""
    if principal.user_id != user_id and not principal.is_staff:
        raise Forbidden("a client may only read its own conversations")


def may_act_as(principal: Principal, user_id: str) -> None:
    """Only an admin may send a message on behalf of another user."""
    if principal.user_id != user_id and principal.role is not Role.admin:
        raise Forbidden("user_id must be the token's subject")
