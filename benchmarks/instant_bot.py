"""A stand-in for the Rasa channel that answers every turn at once, to measure the API alone.

Speaks the ReviewBot channel protocol (`POST /webhooks/reviewbot/webhook`,
`GET /webhooks/reviewbot/`) over HTTP/1.1 keep-alive on a bare asyncio protocol,
so the stand-in costs as little CPU as possible.
Usage: python benchmarks/instant_bot.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys

TURN = json.dumps({
    "messages": [{"recipient_id": "x", "text": "Hello! Welcome to ReviewBot Salon & Shop. How can I help you today?"}],
    "intent": "greet", "confidence": 0.99, "entities": [], "slots": {}, "events": [], "paused": False,
}).encode()
HEALTH = b'{"status":"ok"}'


def response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class InstantBot(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            body = HEALTH if head.startswith("GET") else TURN
            self.transport.write(response(body))  # type: ignore[attr-defined]


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(InstantBot, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
