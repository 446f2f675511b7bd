"""The exception tree every layer raises; mapped to the wire (HTTP status, socket ack) in one place each.

DomainError
├── InvalidInput        the request is malformed or breaks a rule about its own content
├── NotAuthenticated    no valid identity was presented
├── Forbidden           the identity is known and may not do this
├── NotFound            no such thing, or the caller may not know it exists
├── Conflict            the request collides with the current state (duplicate, already done)
├── Gone                it existed and no longer works (a spent, expired or revoked invite)
├── RateLimited         too many requests; ``retry_after`` seconds until the next is allowed
└── PayloadTooLarge     the body is over the configured limit

Each error carries a stable machine ``code`` (snake_case), a human ``message`` and optional ``details``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "error"
    default_message: ClassVar[str] = "request failed"

    def __init__(self, message: str | None = None, *, code: str | None = None, details: Any = None) -> None:
        self.message = message or self.default_message
        self.instance_code = code or self.code
        self.details = details
        super().__init__(self.message)

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.instance_code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class InvalidInput(DomainError):
    code = "invalid_input"
    default_message = "the request is not valid"


class NotAuthenticated(DomainError):
    code = "not_authenticated"
    default_message = "sign in first"


class Forbidden(DomainError):
    code = "forbidden"
    default_message = "you may not do this"


class NotFound(DomainError):
    code = "not_found"
    default_message = "not found"


class Conflict(DomainError):
    code = "conflict"
    default_message = "this conflicts with the current state"


class Gone(DomainError):
    code = "gone"
    default_message = "this no longer works"


class RateLimited(DomainError):
    code = "rate_limited"
    default_message = "too many requests"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(message, details={"retry_after": self.retry_after})


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    default_message = "the request body is too large"
