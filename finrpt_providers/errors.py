"""The error types every provider, the chain and the CLI raise.

Each message says what went wrong *and* what to do about it. Messages never
contain secrets: providers pass only names of settings, never their values, and
every message is scrubbed (:mod:`.redact`) in case a server echoed one.
"""

from __future__ import annotations

from typing import Any

from .redact import scrub


class ProviderError(Exception):
    """Base of every error this package raises on purpose.

    ``provider`` names the provider that raised it, when there is one.
    """

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(scrub(str(message)))  # messages quote servers: mask any secret they echo
        self.provider = provider

    def __str__(self) -> str:
        msg = scrub(super().__str__())
        if self.provider and not msg.startswith(f"{self.provider}:"):
            return f"{self.provider}: {msg}"
        return msg


class InvalidQuery(ProviderError, ValueError):
    """The question itself is wrong (bad ticker, dates, interval...).

    Raised before any I/O; the chain stops on it, since no provider can answer.
    """


class ConfigurationError(InvalidQuery):
    """A setting has a value outside what it accepts (the message names both)."""


class UnsupportedQuery(ProviderError):
    """This provider cannot answer this (valid) question; another one may."""


class MissingCredentials(ProviderError):
    """A credential the provider needs is not configured."""


class AuthenticationFailed(ProviderError):
    """The service rejected the credentials."""


class NotEntitled(ProviderError):
    """The credentials are valid but the plan does not include this data."""


class RateLimited(ProviderError):
    """The service asked us to slow down. ``retry_after`` is in seconds, when known."""

    def __init__(
        self, message: str, *, provider: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, provider=provider)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """Network failure, timeout or a 5xx answer: try again later or elsewhere."""


class NoData(ProviderError):
    """The service answered, but has no bars for this ticker and range."""


class DataIntegrityError(ProviderError):
    """The payload is malformed, truncated, or breaks the bar-frame contract."""


class PluginError(ProviderError):
    """A plugin broke its promise: one of its methods raised something other than a
    ProviderError (a bug), or called ``sys.exit``. The message names the plugin and the
    method; the chain records it as that provider's failure and moves on."""


class AllProvidersFailed(ProviderError):
    """No provider in the chain could answer. ``attempts`` says who was tried and why."""

    def __init__(self, message: str, *, attempts: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.attempts = attempts

    @classmethod
    def from_attempts(cls, what: str, attempts: list[dict[str, Any]]) -> "AllProvidersFailed":
        if not attempts:
            return cls(f"no provider could answer {what}: the provider list is empty; "
                       "set FINRPT_PRICE_PROVIDERS or pass providers=[...]", attempts=[])
        tried = "; ".join(f"{a['provider']} {a['outcome']} ({a['detail']})" for a in attempts)
        return cls(f"no provider could answer {what}: {tried}", attempts=attempts)


__all__ = [
    "ProviderError",
    "InvalidQuery",
    "ConfigurationError",
    "UnsupportedQuery",
    "MissingCredentials",
    "AuthenticationFailed",
    "NotEntitled",
    "RateLimited",
    "ProviderUnavailable",
    "NoData",
    "DataIntegrityError",
    "PluginError",
    "AllProvidersFailed",
]
