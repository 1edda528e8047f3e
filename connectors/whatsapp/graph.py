"""Async client of Meta's Graph API for WhatsApp: sending, mark-as-read and media.

One shared connection pool; every call to /messages passes a rate limiter (sends
per second per phone number) and retries throughput errors, 5xx and timeouts
with exponential backoff and jitter. Errors that retrying cannot fix (outside
the 24-hour window, undeliverable, not allowed, expired token) raise at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from connectors.whatsapp import metrics

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_INTERACTIVE_BODY = 1024
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_LIST_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_REPLY_ID = 256

THROUGHPUT_LIMIT = 130429
PAIR_RATE_LIMIT = 131056
RETRYABLE_CODES = {THROUGHPUT_LIMIT, PAIR_RATE_LIMIT}
OUTSIDE_WINDOW = 131047
STOPPED_MARKETING = 131050  # the customer stopped marketing messages from this business
PERMANENT_CODES = {OUTSIDE_WINDOW, STOPPED_MARKETING, 131026, 131030, 190}


class GraphError(Exception):
    """An answer from the Graph API that is not a success; `retryable` says whether backing off may help."""

    def __init__(
        self, reason: str, *, code: int | None = None, http_status: int | None = None, retryable: bool
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.http_status = http_status
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class MediaInfo:
    id: str
    url: str
    mime_type: str | None
    sha256: str | None
    file_size: int | None


class MediaTooLarge(GraphError):
    """The media is bigger than the caller's cap (announced by Meta, or found while streaming)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=False)


@dataclass(slots=True)
class MediaDownload:
    """An open download of one media object: read `chunks()` once, then `aclose()` (always)."""

    info: MediaInfo
    content_type: str | None
    content_length: int | None
    _response: httpx.Response
    _max_bytes: int

    async def chunks(self) -> AsyncIterator[bytes]:
        """The bytes as they arrive; raises MediaTooLarge as soon as more than the cap has come."""
        received = 0
        async for chunk in self._response.aiter_bytes():
            received += len(chunk)
            if received > self._max_bytes:
                raise MediaTooLarge(f"the media is over {self._max_bytes} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line or word boundary when there is one."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        cut = cut if cut > limit // 2 else limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_message(to: str, body: str, *, reply_to: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"to": to, "type": "text", "text": {"body": body, "preview_url": False}}
    if reply_to:
        message["context"] = {"message_id": reply_to}
    return message


def button_message(to: str, body: str, buttons: list[dict[str, Any]]) -> dict[str, Any]:
    """Reply buttons (≤ 3): the id is the bot's payload, so a tap comes back as that payload."""
    return {
        "to": to,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {
                        "type": "reply",
                        "reply": {
                            "id": _clip(str(b.get("payload") or b.get("title") or ""), MAX_REPLY_ID),
                            "title": _clip(str(b.get("title") or b.get("payload") or ""), MAX_BUTTON_TITLE),
                        },
                    }
                    for b in buttons
                ]
            },
        },
    }


def list_message(to: str, body: str, buttons: list[dict[str, Any]], *, label: str = "Choose") -> dict[str, Any]:
    """A list message for more than three options (WhatsApp allows ten rows)."""
    rows = []
    for b in buttons[:MAX_LIST_ROWS]:
        title = str(b.get("title") or b.get("payload") or "")
        row = {"id": _clip(str(b.get("payload") or title), MAX_REPLY_ID), "title": _clip(title, MAX_ROW_TITLE)}
        if len(title) > MAX_ROW_TITLE:
            row["description"] = _clip(title, MAX_ROW_DESCRIPTION)
        rows.append(row)
    return {
        "to": to,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": body},
            "action": {"button": _clip(label, MAX_BUTTON_TITLE), "sections": [{"title": "Options", "rows": rows}]},
        },
    }


def image_message(to: str, link: str, caption: str | None = None) -> dict[str, Any]:
    image: dict[str, Any] = {"link": link}
    if caption:
        image["caption"] = _clip(caption, MAX_INTERACTIVE_BODY)
    return {"to": to, "type": "image", "image": image}


def build_messages(
    to: str, *, text: str, buttons: list[dict[str, Any]] | None = None, image: str | None = None
) -> list[dict[str, Any]]:
    """The Graph API requests that carry one bot or CSR message: text pieces, then buttons or a list."""
    requests: list[dict[str, Any]] = []
    if image:
        requests.append(image_message(to, image))
    if buttons:
        if len(buttons) > MAX_LIST_ROWS:
            log.warning("list truncated to %d rows to=%s options=%d", MAX_LIST_ROWS, to, len(buttons))
        # An interactive body holds 1024 characters: longer text goes first as plain text.
        body = text if text and len(text) <= MAX_INTERACTIVE_BODY else "Please choose:"
        if text and body != text:
            requests.extend(text_message(to, piece) for piece in split_text(text))
        builder = button_message if len(buttons) <= MAX_BUTTONS else list_message
        requests.append(builder(to, body, buttons))
    elif text:
        requests.extend(text_message(to, piece) for piece in split_text(text))
    return requests


def _error_of(response: httpx.Response) -> GraphError:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
    reason = " - ".join(str(x) for x in (error.get("message"), details) if x) or f"HTTP {response.status_code}"
    retryable = code in RETRYABLE_CODES or (code not in PERMANENT_CODES and response.status_code >= 500)
    return GraphError(reason, code=code, http_status=response.status_code, retryable=retryable)


class GraphClient:
    """Graph API client for the business's phone numbers (`phone_number_id` is the default sender)."""

    def __init__(
        self,
        *,
        base_url: str,
        phone_number_id: str,
        access_token: str,
        timeout: float = 10.0,
        rate_per_second: float = 80.0,
        attempts: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.phone_number_id = phone_number_id
        self._base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        )
        # One send every 1/rate seconds per number (Meta's limit is per phone number): never more
        # than `rate` in any one-second window.
        self._rate = rate_per_second
        self._limiters: dict[str, AsyncLimiter] = {}
        self._attempts = attempts
        self._wait = wait_exponential_jitter(multiplier=backoff_initial, max=backoff_max, jitter=backoff_initial)

    async def send(self, message: dict[str, Any], *, phone_number_id: str | None = None) -> str:
        """POST one message (`to`, `type`, ...) to /{number}/messages; the wamid Meta assigned. Raises GraphError.

        `phone_number_id` is the business number it goes out from (default: the first configured).
        """
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", **message}
        answer = await self._post_messages(body, phone_number_id or self.phone_number_id)
        try:
            return str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise GraphError("the Graph API accepted the message without a message id", retryable=False) from exc

    async def mark_read(self, wamid: str, *, phone_number_id: str | None = None, typing: bool = False) -> None:
        """Mark an inbound message as read (blue ticks), on the number it was sent to.

        `typing` also shows the customer the typing indicator (Meta's documented
        `"typing_indicator": {"type": "text"}` on the same request): it stays until our reply
        arrives or 25 seconds pass, so only ask for it when a reply is coming.
        """
        # Not a message, so not held back by the messages-per-second limiter.
        url = f"{self._base_url}/{phone_number_id or self.phone_number_id}/messages"
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        await self._call("POST", url, json=body)

    async def media_info(self, media_id: str) -> MediaInfo:
        """GET /{media-id}: the short-lived download URL and the media's type."""
        answer = await self._call("GET", f"{self._base_url}/{media_id}")
        return MediaInfo(
            id=str(answer.get("id") or media_id),
            url=str(answer["url"]),
            mime_type=answer.get("mime_type"),
            sha256=answer.get("sha256"),
            file_size=int(answer["file_size"]) if answer.get("file_size") is not None else None,
        )

    async def download_media(self, media_id: str) -> tuple[bytes, str | None]:
        """The media's bytes and mime type (the URL expires within minutes, so fetch it right away)."""
        info = await self.media_info(media_id)
        response = await self._request("GET", info.url)
        return response.content, info.mime_type or response.headers.get("content-type")

    async def open_media(self, media_id: str, *, max_bytes: int) -> MediaDownload:
        """Start downloading a media object for streaming it on (`GET /{media-id}`, then the URL).

        Refuses (MediaTooLarge) when Meta's `file_size` or the download's Content-Length is over
        `max_bytes`; the stream itself stops at the cap too. The URL and the token stay here.
        """
        info = await self.media_info(media_id)
        if info.file_size is not None and info.file_size > max_bytes:
            raise MediaTooLarge(f"the media is {info.file_size} bytes, over the {max_bytes} allowed")
        # The URL lives for minutes: one attempt now (the caller can ask again for a fresh URL).
        try:
            response = await self._client.send(self._client.build_request("GET", info.url), stream=True)
        except httpx.TimeoutException as exc:
            metrics.GRAPH_ERRORS.labels(code="timeout").inc()
            raise GraphError("the media download did not answer in time", retryable=True) from exc
        except httpx.TransportError as exc:
            metrics.GRAPH_ERRORS.labels(code="transport").inc()
            raise GraphError(f"the media download is unreachable ({type(exc).__name__})", retryable=True) from exc
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            error = _error_of(response)
            metrics.GRAPH_ERRORS.labels(code=str(error.code or f"http_{response.status_code}")).inc()
            raise error
        length = response.headers.get("content-length")
        size = int(length) if length and length.isdigit() else None
        if size is not None and size > max_bytes:
            await response.aclose()
            raise MediaTooLarge(f"the media is {size} bytes, over the {max_bytes} allowed")
        return MediaDownload(
            info=info,
            content_type=info.mime_type or response.headers.get("content-type"),
            content_length=size,
            _response=response,
            _max_bytes=max_bytes,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post_messages(self, body: dict[str, Any], phone_number_id: str) -> dict[str, Any]:
        url = f"{self._base_url}/{phone_number_id}/messages"
        limiter = self._limiters.get(phone_number_id)
        if limiter is None:
            limiter = self._limiters[phone_number_id] = AsyncLimiter(1, 1.0 / self._rate)
        return await self._call("POST", url, json=body, limiter=limiter)

    async def _call(
        self, method: str, url: str, *, limiter: AsyncLimiter | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        response = await self._request(method, url, limiter=limiter, **kwargs)
        try:
            answer = response.json()
        except ValueError as exc:
            raise GraphError("the Graph API answered with something other than JSON", retryable=False) from exc
        return answer if isinstance(answer, dict) else {}

    async def _request(
        self, method: str, url: str, *, limiter: AsyncLimiter | None = None, **kwargs: Any
    ) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, GraphError) and exc.retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if limiter is not None:
                    # Every attempt is a send Meta counts, retries included.
                    await limiter.acquire()
                return await self._once(method, url, **kwargs)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            metrics.GRAPH_ERRORS.labels(code="timeout").inc()
            raise GraphError("the Graph API did not answer in time", retryable=True) from exc
        except httpx.TransportError as exc:
            metrics.GRAPH_ERRORS.labels(code="transport").inc()
            raise GraphError(f"the Graph API is unreachable ({type(exc).__name__})", retryable=True) from exc
        if response.status_code < 400:
            return response
        error = _error_of(response)
        metrics.GRAPH_ERRORS.labels(code=str(error.code or f"http_{response.status_code}")).inc()
        log.warning(
            "graph error code=%s http=%s retryable=%s reason=%s",
            error.code,
            error.http_status,
            error.retryable,
            error.reason,
        )
        raise error
