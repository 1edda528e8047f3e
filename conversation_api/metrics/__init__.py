"""Prometheus metrics of the API and session tracking.

Other packages record through `conversation_api.metrics.instruments`
(e.g. `observe_csr_first_response`, `count_handoff_transition`,
`count_whatsapp_send_failure`).
"""
