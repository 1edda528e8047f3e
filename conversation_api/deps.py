"""Dependency aliases so routes read like prose."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
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


def _authenticate(container: Container, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None:
        raise NotAuthenticated("missing bearer token (Authorization: Bearer <JWT>)")
    return container.tokens.decode(credentials.credentials)


async def current_principal(
    request: Request,
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal or _authenticate(container, credentials)


CurrentUser = Annotated[Principal, Depends(current_principal)]


class AuthenticatedRoute(APIRoute):
    """A route that checks the bearer token before the body is read.

    FastAPI reads and parses the body before it solves any dependency, so with the
    token checked only in `current_principal` a caller without one would still get
    its JSON parsed, and a 422 for a bad body instead of the 401. Routers whose every
    route needs a token use this as their `route_class`; `current_principal` then
    returns the principal found here.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated_first(request: Request) -> Response:
            credentials = await _bearer(request)
            request.state.principal = _authenticate(request.app.state.container, credentials)
            return await handler(request)

        return authenticated_first


async def within_message_rate(principal: CurrentUser, container: ContainerDep) -> None:
    """Counts a message against the caller's RATE_LIMIT_MESSAGES (429 over it); keyed by the token's user."""
    await container.rate_limiter.hit(principal.user_id)


MessageRate = Depends(within_message_rate)


def may_read_user(principal: Principal, user_id: str) -> None:
    """Clients read only their own data; CSRs and admins read any customer's."""
    if principal.user_id != user_id and not principal.is_staff:
        raise Forbidden("a client may only read its own conversations")


def may_act_as(principal: Principal, user_id: str) -> None:
    """Only an admin may send a message on behalf of another user."""
    if principal.user_id != user_id and principal.role is not Role.admin:
        raise Forbidden("user_id must be the token's subject")
