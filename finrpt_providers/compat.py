"""Installed packages that cannot work together, told when ``finrpt_providers`` is imported.

pip cannot keep these pairs apart for us: pyarrow 26 declares no numpy requirement, yet
its wheels refuse numpy 1.x at import, and an environment marker cannot see numpy's
version. So an environment holding ``numpy<2`` (FinRpt pins numpy 1.26.4) resolves to the
newest pyarrow unless pyarrow is pinned too, installs cleanly and breaks at run time,
where the store, the flat files and pandas' Parquet reads need pyarrow. Read from the
installed metadata: nothing is imported (``import finrpt_providers`` stays light).
"""

from __future__ import annotations

import re

#: (package, from version, other package, which it needs at least, what happens, the older
#: package's range to keep instead). Measured: pyarrow 16-25 import with numpy 1.26.4;
#: pyarrow 26.0.0 and 26.0.1 raise ImportError ("pyarrow requires NumPy 2.0 or newer").
BROKEN_PAIRS: tuple[tuple[str, tuple[int, ...], str, tuple[int, ...], str, str], ...] = (
    ("pyarrow", (26,), "numpy", (2,), "its wheels are built for numpy 2 and refuse numpy 1.x at import",
     "pyarrow>=16,<26"),
)


def _release(version: str) -> tuple[int, ...]:
    """``26.0.1`` -> (26, 0, 1); ``2.0.0rc1`` -> (2, 0, 0); only the leading numbers count."""
    m = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(p) for p in m.group(0).split(".")) if m else ()


def _installed(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except Exception:  # not installed, or metadata unreadable: nothing to say about it
        return None


def _spelled(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def broken_pairs(versions: dict[str, str | None] | None = None) -> list[str]:
    """Each broken pair among the installed (or the given) versions, as one sentence with the fix."""
    out = []
    for pkg, since, other, needs, what, keep in BROKEN_PAIRS:
        have = versions.get(pkg) if versions is not None else _installed(pkg)
        theirs = versions.get(other) if versions is not None else _installed(other)
        if not have or not theirs or not _release(have) or not _release(theirs):
            continue
        if _release(have) >= since and _release(theirs) < needs:
            out.append(
                f"{pkg} {have} cannot work with {other} {theirs}: {pkg} >= {_spelled(since)} needs "
                f"{other} >= {_spelled(needs)} ({what}); keep {other} {theirs} with pip install '{keep}', "
                f"or pip install '{other}>={_spelled(needs)}'")
    return out


def check() -> None:
    """Raise ImportError naming every broken pair installed (None when there is none)."""
    try:
        found = broken_pairs()
    except Exception:  # the check itself must never be what breaks the import
        return
    if found:
        raise ImportError("finrpt_providers: broken install: " + "; ".join(found))
