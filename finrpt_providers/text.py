"""Plain-text tables for terminals (a Base module: the CLI and the demo both print them)."""

from __future__ import annotations

from typing import Any


def table(rows: list[list[str]], header: list[str]) -> str:
    """``rows`` under ``header`` in left-aligned columns, separated by two spaces."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def days(items, most: int = 5) -> str:
    """Dates for a log line of one line: all of them when few (``2026-06-01, 2026-06-02``),
    else a count and the first and last (``1,250 sessions from 2016-01-04 to 2020-12-31``)."""
    items = sorted(items)
    if len(items) <= most:
        return ", ".join(d.isoformat() for d in items)
    return f"{len(items):,} sessions from {items[0].isoformat()} to {items[-1].isoformat()}"


#: an echoed input longer than ECHO_LIMIT characters is cut to its first ECHO_KEEP
ECHO_LIMIT = 80
ECHO_KEEP = 40


def short(text: Any, quote: bool = False) -> str:
    """``text`` (a ticker, a path, a source's value) as a message echoes it: whole when short,
    else its first ECHO_KEEP characters and its length (``AAAA...AAAA... (100000 characters)``),
    so one huge input never floods a terminal or a log. Control characters are escaped;
    ``quote``: in quotes, like repr."""
    text = str(text)
    head = text if len(text) <= ECHO_LIMIT else text[:ECHO_KEEP]
    if quote:
        head = repr(head)
    elif not head.isprintable():
        head = repr(head)[1:-1]
    return head if len(text) <= ECHO_LIMIT else f"{head}... ({len(text)} characters)"


def shown(value: Any) -> str:
    """A user's value in a message: a string in quotes, anything else as Python writes it
    (``None``, ``1.0``), shortened when long (:func:`short`)."""
    return short(value, quote=True) if isinstance(value, str) else short(repr(value))
