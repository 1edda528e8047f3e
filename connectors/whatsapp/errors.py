"""Typed errors of the WhatsApp connector, mapped to HTTP by conversation_api.errors."""

from __future__ import annotations

from conversation_api.errors import ApiError


class WhatsAppNotConfigured(ApiError):
    # 503, not 404: Meta keeps retrying a 5xx for days, so nothing is lost while an operator sets the secrets.
    status_code = 503
    code = "whatsapp_not_configured"


class SignatureMissing(ApiError):
    status_code = 401
    code = "signature_missing"


class SignatureInvalid(ApiError):
    status_code = 403
    code = "signature_invalid"


class VerificationFailed(ApiError):
    status_code = 403
    code = "verification_failed"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class MalformedNotification(ApiError):
    status_code = 400
    code = "malformed_notification"


class WhatsAppDeliveryError(ApiError):
    """The Graph API kept failing with a retryable error; the message is stored and marked failed."""

    status_code = 503
    code = "whatsapp_unavailable"


class MediaNotFound(ApiError):
    status_code = 404
    code = "media_not_found"


class MediaUnavailable(ApiError):
    """The Graph API would not hand the media over (expired after Meta's 7 days, deleted, an error)."""

    status_code = 502
    code = "media_unavailable"


class MediaTooLarge(ApiError):
    """Over WHATSAPP_MEDIA_MAX_BYTES: not streamed to the console."""

    status_code = 502
    code = "media_too_large"
