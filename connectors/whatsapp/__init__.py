"""WhatsApp Business Cloud API connector: Meta's webhook in, the Graph API out.

webhook.py   GET handshake + POST notifications (signature, size, parsing, durable store, fast 200)
payloads.py  Meta's notification shapes -> InboundMessage / StatusUpdate / TemplateUpdate / PreferenceUpdate
numbers.py   the business's phone numbers: which we serve, which one a reply goes out from
store.py     idempotent writes: contacts, the inbound queue, statuses, template news
worker.py    drains the inbound queue through the MessageGateway and sends the replies (and answers STOP/START)
graph.py     async Graph API client: retries, rate limit per number, text/buttons/list/read/media
templates.py the template registry file: checked at start-up, rendered, sent in Meta's shape
consent.py   the consent ledger: opt-outs and opt-ins, when and how
outbound.py  the OutboundChannel "whatsapp" (bot and CSR replies, 24-hour window, templates, consent)
admin.py     staff views: templates with Meta's status and quality, a customer's consent history
"""
