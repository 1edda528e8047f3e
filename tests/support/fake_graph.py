"""A local stand-in for Meta's Graph API (we cannot reach the real one from tests).

A real HTTP server (Starlette on uvicorn, in a thread) that speaks the documented
protocol: `POST /{version}/{phone-number-id}/messages` (send, mark-as-read and the
typing indicator), `GET /{version}/{media-id}` and the authenticated media download. It checks the bearer token
and the documented limits of each message, records every request, and can be
told to answer the next requests with any Graph error code or a timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.processes import free_port

VERSION = "v25.0"
ACCESS_TOKEN = "test-whatsapp-access-token"
PHONE_NUMBER_ID = "106540352242922"
# A second number of the same business account (the token may send from both).
SECOND_PHONE_NUMBER_ID = "106540352242923"

# Meta's titles and HTTP statuses for the codes the connector branches on.
ERRORS: dict[int, tuple[int, str]] = {
    130429: (400, "Rate limit hit"),
    131056: (400, "(Business Account, Consumer Account) pair rate limit hit"),
    131047: (400, "Re-engagement message"),
    131026: (400, "Message Undeliverable"),
    131030: (400, "Recipient phone number not in allowed list"),
    131050: (
        400,
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp "
        "from your business",
    ),
    132000: (400, "Number of parameters does not match the expected number of params"),
    132001: (404, "Template name does not exist in the translation"),
    132018: (400, "There was an issue with the parameters in your template"),
    190: (401, "Invalid OAuth access token - Cannot parse access token"),
    100: (400, "Invalid parameter"),
    1: (500, "An unknown error occurred"),
    2: (503, "Service temporarily unavailable"),
}


@dataclass
class Recorded:
    method: str
    path: str
    body: dict[str, Any] | None
    authorization: str | None
    at: float  # time.monotonic() on arrival
    answer: int = 200
    error_code: int | None = None

    @property
    def phone_number_id(self) -> str:
        """The business number the request was sent from (`/{version}/{phone-number-id}/messages`)."""
        return self.path.strip("/").split("/")[1]

    @property
    def is_read_receipt(self) -> bool:
        return bool(self.body and self.body.get("status") == "read")

    @property
    def is_typing(self) -> bool:
        return self.is_read_receipt and bool(self.body and self.body.get("typing_indicator"))


@dataclass
class Scripted:
    code: int | None = None  # Graph error code to answer with
    http_status: int | None = None
    delay: float = 0.0  # seconds to sleep first (longer than the client timeout = a timeout)


@dataclass
class FakeGraph:
    access_token: str = ACCESS_TOKEN
    phone_number_id: str = PHONE_NUMBER_ID
    other_phone_number_ids: tuple[str, ...] = (SECOND_PHONE_NUMBER_ID,)
    requests: list[Recorded] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # The templates WhatsApp Manager approved: (name, language) -> (category, body parameters, quick replies).
    templates: dict[tuple[str, str], tuple[str, int, int]] = field(default_factory=dict)
    # Customers who stopped marketing messages from this business (a marketing template gets 131050).
    stopped_marketing: set[str] = field(default_factory=set)
    # False: media answered without `file_size` and downloaded chunked, without a Content-Length.
    announce_media_sizes: bool = True
    _wamids: dict[str, dict[str, Any]] = field(default_factory=dict)  # wamid -> the body it was assigned to

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Scripted] = deque()
        self._ids = itertools.count(1)
        # Unique per instance: tests share one database schema, and wamids are unique there.
        self._prefix = uuid.uuid4().hex[:8].upper()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        app = Starlette(
            routes=[
                Route("/media-download/{media_id}", self._download, methods=["GET"]),
                Route("/{version}/{phone}/messages", self._messages, methods=["POST"]),
                Route("/{version}/{media_id}", self._media_info, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-graph", daemon=True)

    @property
    def url(self) -> str:
        """What WHATSAPP_GRAPH_URL is set to."""
        return f"{self.base_url}/{VERSION}"

    def start(self) -> FakeGraph:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Graph API did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    # --- telling it what to answer ---------------------------------------------------------------

    def approve(self, name: str, language: str, category: str, parameters: int = 0, quick_replies: int = 0) -> None:
        """A template WhatsApp Manager approved (Meta refuses a template it does not know: 132001)."""
        self.templates[(name, language)] = (category, parameters, quick_replies)

    def fail_next(self, code: int, times: int = 1) -> None:
        """Answer the next `times` /messages requests with Graph error `code`."""
        with self._lock:
            self._script.extend(Scripted(code=code) for _ in range(times))

    def time_out_next(self, delay: float, times: int = 1) -> None:
        with self._lock:
            self._script.extend(Scripted(delay=delay) for _ in range(times))

    # --- what it saw ------------------------------------------------------------------------------

    def sends(self, to: str | None = None, *, accepted_only: bool = True) -> list[dict[str, Any]]:
        """Message bodies (not read receipts), oldest first; by default only those answered 200."""
        with self._lock:
            return [
                r.body
                for r in self.requests
                if r.body
                and not r.is_read_receipt
                and (to is None or r.body.get("to") == to)
                and (r.answer == 200 or not accepted_only)
            ]

    def texts(self, to: str | None = None) -> list[str]:
        out = []
        for body in self.sends(to):
            if body["type"] == "text":
                out.append(body["text"]["body"])
            elif body["type"] == "interactive":
                out.append(body["interactive"]["body"]["text"])
        return out

    def reads(self) -> list[str]:
        with self._lock:
            return [r.body["message_id"] for r in self.requests if r.body and r.is_read_receipt]

    def typing(self) -> list[Recorded]:
        """Read receipts that showed the typing indicator, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.is_typing]

    def add_media(self, media_id: str, content: bytes, mime_type: str) -> None:
        """Media a customer sent: `GET /{media-id}` answers its URL, the URL its bytes (with the token)."""
        self.media[media_id] = (content, mime_type)

    def media_requests(self) -> list[Recorded]:
        """`GET /{media-id}` and download requests, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET"]

    def attempts(self, to: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.body and r.body.get("to") == to]

    def message_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def wamid_for(self, n: int) -> str:
        """The wamid this fake gives its n-th accepted message (1-based)."""
        return f"wamid.FAKE{self._prefix}{n:010d}"

    def wamids(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._wamids)

    # --- the protocol -----------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.access_token}"

    @staticmethod
    def _error(code: int, details: str | None = None) -> JSONResponse:
        status, message = ERRORS.get(code, (400, "Error"))
        error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}
        if details:
            error["error_data"] = {"messaging_product": "whatsapp", "details": details}
        return JSONResponse({"error": error}, status_code=status)

    async def _messages(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        record = Recorded("POST", request.url.path, body, request.headers.get("authorization"), time.monotonic())
        with self._lock:
            self.requests.append(record)
            scripted = self._script.popleft() if self._script else None
        response = await self._answer(request, body, scripted)
        record.answer = response.status_code
        if response.status_code != 200:
            record.error_code = json.loads(bytes(response.body)).get("error", {}).get("code")
        return response

    async def _answer(self, request: Request, body: Any, scripted: Scripted | None) -> Response:
        if not self._authorised(request):
            return self._error(190)
        if request.path_params["phone"] not in (self.phone_number_id, *self.other_phone_number_ids):
            return self._error(100, "Unsupported post request: unknown phone number id")
        if scripted is not None:
            if scripted.delay:
                await asyncio.sleep(scripted.delay)
            if scripted.code is not None:
                return self._error(scripted.code, f"scripted failure {scripted.code}")
        problem = validate_message(body)
        if problem:
            return self._error(100, problem)
        if body.get("type") == "template":
            refusal = self._template_refusal(body)
            if refusal is not None:
                return self._error(*refusal)
        if body.get("status") == "read":
            return JSONResponse({"success": True})
        wamid = self.wamid_for(next(self._ids))
        with self._lock:
            self._wamids[wamid] = body
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": wamid}],
            }
        )

    def _template_refusal(self, body: dict[str, Any]) -> tuple[int, str] | None:
        """What Meta answers a well-formed template send it cannot deliver: unknown, wrong count, stopped."""
        template = body["template"]
        known = self.templates.get((template["name"], template["language"]["code"]))
        if known is None:
            return 132001, f"template {template['name']} ({template['language']['code']}) does not exist"
        category, parameters, quick_replies = known
        components = template.get("components") or []
        given = sum(len(c.get("parameters") or []) for c in components if c.get("type") == "body")
        replies = [c for c in components if c.get("type") == "button" and c.get("sub_type") == "quick_reply"]
        if given != parameters or len(replies) > quick_replies:
            return 132000, f"expected {parameters} body parameters, got {given}"
        if category == "marketing" and body["to"] in self.stopped_marketing:
            return 131050, "the recipient stopped marketing messages"
        return None

    def _record_get(self, request: Request) -> None:
        record = Recorded("GET", request.url.path, None, request.headers.get("authorization"), time.monotonic())
        with self._lock:
            self.requests.append(record)

    async def _media_info(self, request: Request) -> Response:
        self._record_get(request)
        if not self._authorised(request):
            return self._error(190)
        media_id = request.path_params["media_id"]
        if media_id not in self.media:
            return self._error(100, "media not found")
        content, mime = self.media[media_id]
        info: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "url": f"{self.base_url}/media-download/{media_id}",
            "mime_type": mime,
            "sha256": "0" * 64,
            "file_size": len(content),
            "id": media_id,
        }
        if not self.announce_media_sizes:
            del info["file_size"]
        return JSONResponse(info)

    async def _download(self, request: Request) -> Response:
        self._record_get(request)
        if not self._authorised(request):
            return Response(status_code=401)
        if request.path_params["media_id"] not in self.media:
            return Response(status_code=404)  # Meta: the URL expired or the media was deleted
        content, mime = self.media[request.path_params["media_id"]]
        if not self.announce_media_sizes:

            async def chunks() -> Any:
                for start in range(0, len(content), 1024):
                    yield content[start : start + 1024]

            return StreamingResponse(chunks(), media_type=mime)
        return Response(content, media_type=mime)


def validate_message(body: Any) -> str | None:
    """What Meta would refuse (code 100) in a /messages body, per the documented limits; None if fine."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if body.get("status") == "read":
        if not isinstance(body.get("message_id"), str):
            return "message_id is required"
        typing = body.get("typing_indicator")
        if typing is not None and typing != {"type": "text"}:
            return 'typing_indicator must be {"type": "text"}'
        return None
    if not body.get("to"):
        return "to is required"
    kind = body.get("type")
    if kind == "text":
        text = (body.get("text") or {}).get("body")
        if not text or len(text) > 4096:
            return "text.body must be 1..4096 characters"
        return None
    if kind == "image":
        return None if (body.get("image") or {}).get("link") else "image.link is required"
    if kind == "template":
        return validate_template(body.get("template"))
    if kind != "interactive":
        return f"unsupported type {kind!r}"
    interactive = body.get("interactive") or {}
    text = (interactive.get("body") or {}).get("text") or ""
    if not text or len(text) > 1024:
        return "interactive.body.text must be 1..1024 characters"
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        buttons = action.get("buttons") or []
        if not 1 <= len(buttons) <= 3:
            return "1 to 3 buttons"
        titles = [b["reply"]["title"] for b in buttons]
        if any(not t or len(t) > 20 for t in titles) or len(set(titles)) != len(titles):
            return "button titles must be unique, 1..20 characters"
        if any(len(b["reply"]["id"]) > 256 for b in buttons):
            return "button ids must be at most 256 characters"
        return None
    if interactive.get("type") == "list":
        rows = [row for section in action.get("sections") or [] for row in section.get("rows") or []]
        if not 1 <= len(rows) <= 10:
            return "1 to 10 rows"
        if any(len(r["title"]) > 24 or len(r.get("description", "")) > 72 for r in rows):
            return "row titles at most 24, descriptions at most 72 characters"
        if not action.get("button") or len(action["button"]) > 20:
            return "the list button label must be 1..20 characters"
        return None
    return f"unsupported interactive type {interactive.get('type')!r}"


TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")


def validate_template(template: Any) -> str | None:
    """Meta's documented shape of `template` in a send: name, language.code, components with typed parameters."""
    if not isinstance(template, dict) or not TEMPLATE_NAME.match(str(template.get("name") or "")):
        return "template.name is required (lowercase letters, digits, underscores)"
    if not (template.get("language") or {}).get("code"):
        return "template.language.code is required"
    components = template.get("components", [])
    if not isinstance(components, list):
        return "template.components must be a list"
    for component in components:
        kind = component.get("type")
        if kind not in ("header", "body", "button"):
            return f"unknown component type {kind!r}"
        for parameter in component.get("parameters") or []:
            ptype = parameter.get("type")
            if ptype == "text":
                text = parameter.get("text")
                if not isinstance(text, str) or not text or re.search(r"[\n\t]| {5,}", text):
                    return "a text parameter must be non-empty, without new lines, tabs or more than 4 spaces"
            elif ptype == "payload":
                if not parameter.get("payload"):
                    return "a payload parameter needs its payload"
            elif ptype not in ("currency", "date_time", "image", "document", "video"):
                return f"unknown parameter type {ptype!r}"
        if kind == "button":
            if component.get("sub_type") not in ("quick_reply", "url", "copy_code", "flow"):
                return "a button component needs sub_type quick_reply, url, copy_code or flow"
            if not str(component.get("index", "")).isdigit():
                return "a button component needs its index (0..9) as a string"
    return None
