"""Secrets out of every text a person or a log sees.

Two nets, applied together by :func:`scrub`:

* **known secrets**: the values of secret settings, registered by :class:`~.config.Config`
  when it holds them, in every form a library may print them: as is, ``repr``-escaped,
  JSON-escaped, backslash-escaped, URL-quoted (upper- and lower-case hex);
* **the shapes a credential takes in a server's echo**, whatever its value: the value
  of an ``Authorization`` header (``Bearer ...``, ``AWS4-HMAC-SHA256 Credential=...``),
  ``Credential=AKID/...``, ``Signature=...``, and ``apiKey=`` / ``"api_key": "..."`` /
  ``X-Amz-Security-Token=`` and the like, in any case.

Every :class:`~.errors.ProviderError` message goes through it, so does every record
of this package's loggers (:func:`logger`) and of the HTTP libraries below us
(:func:`protect`), tracebacks included.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "****"
#: shorter values are not registered: masking them would mangle ordinary words
MIN_LENGTH = 6

_SHAPES = re.compile(
    r"""(?ix)
    ( (?:authorization|proxy-authorization)["']?\s*[:=]\s*["']?(?:b["'])? )   # a header's whole value
      [^"'\r\n]+
    | ( \bbearer\s+ ) [A-Za-z0-9._~+/=-]+
    | ( credential= ) [^/\s,"'&]+                                    # AWS access key id
    | ( signature= ) [0-9a-f]+
    | ( (?:api[_-]?key|access[_-]?key(?:[_-]?id)?|secret[_-]?(?:access[_-]?)?key|access[_-]?token
         |x-amz-security-token|x-amz-credential|x-amz-signature|password)
        ["']?\s*[=:]\s*["']? ) [^\s&"',;}\]]+
    """)

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _escaped(text: str) -> set[str]:
    """``text`` as backslash escaping leaves it inside a quoted string (either quote), once
    or twice (a repr of a dict of bytes, logged inside another repr)."""
    out = {text}
    for _ in range(2):
        for v in list(out):
            b = v.replace("\\", "\\\\")
            out |= {b, b.replace("'", "\\'"), b.replace('"', '\\"'), b.replace("'", "\\'").replace('"', '\\"')}
    return out


def _variants(secret: str) -> set[str]:
    forms = {secret, json.dumps(secret)[1:-1], secret.encode("unicode_escape").decode("ascii"),
             repr(secret)[1:-1], repr(secret.encode("utf-8", "backslashreplace"))[2:-1]}
    out = {v for f in forms for v in _escaped(f)}
    quoted = {quote(secret, safe=""), quote_plus(secret), quote(secret)}
    out |= quoted | {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), v) for v in quoted}
    return {v for v in out if len(v) >= MIN_LENGTH}


def register(*secrets: str | None) -> None:
    """Remember secret values so that :func:`scrub` masks them (and their escaped forms)."""
    global _pattern
    new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_LENGTH}
    with _lock:
        if new <= _known:
            return
        _known.update(new)
        forms = sorted({v for s in _known for v in _variants(s)}, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in forms))


def _shape(m: re.Match[str]) -> str:
    prefix = next(g for g in m.groups() if g is not None)
    return prefix + MASK


def scrub(text: str) -> str:
    """``text`` with every known secret and every credential-shaped value masked."""
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _SHAPES.sub(_shape, text)


class LogFilter(logging.Filter):
    """Scrubs a record's message and its formatted traceback before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is the handler's business, not ours
            return True
        clean = scrub(text)
        if clean != text:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_filter = LogFilter()


def protect(*names: str) -> None:
    """Attach the scrubbing filter to these loggers (a filter on a logger does not cover
    its children: name each one that logs)."""
    for name in names:
        lg = logging.getLogger(name)
        if _filter not in lg.filters:
            lg.addFilter(_filter)


def logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the scrubbing filter: every logger of this package."""
    protect(name)
    return logging.getLogger(name)


#: the loggers of the HTTP stacks under the providers (they print URLs, headers, bodies)
HTTP_LOGGERS = ("urllib3", "urllib3.connectionpool", "urllib3.util.retry", "requests", "botocore",
                "botocore.endpoint", "botocore.auth", "botocore.hooks", "botocore.parsers", "botocore.retryhandler",
                "botocore.httpsession", "botocore.credentials", "botocore.client", "botocore.regions",
                "botocore.awsrequest", "botocore.response", "boto3", "s3transfer", "curl_cffi")


__all__ = ["MASK", "register", "scrub", "LogFilter", "protect", "logger", "HTTP_LOGGERS"]
