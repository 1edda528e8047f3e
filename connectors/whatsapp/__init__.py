"""WhatsApp Business Cloud API connector: Meta's webhook in, the Graph API out.

webhook.py  GET handshake + POST notifications (signature, size, parsing, durable store, fast 200)
payloads.py Meta's notification shapes -> InboundMessage / StatusUpdate
store.py    idempotent writes: contacts, the inbound queue, statuses
worker.py   drains the inbound queue through the MessageGateway and sends the replies
graph.py    async Graph API client: retries, rate limit, text/buttons/list/read/media
outbound.py the OutboundChannel "whatsapp" (bot and CSR replies, 24-hour window)
"""
