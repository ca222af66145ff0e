"""Time as the whole package reads it (a Base module: imports nothing of the package).

Bars are stamped in New York time (``ET``); a session day is the New York calendar
date of a bar's start. Arithmetic on stamps goes through :func:`wall_ns` (New York wall
clock as int64 ns), so a day is ``wall // DAY_NS`` and a day ordinal compares with
:func:`ordinal` of a ``datetime.date``: no per-row Timestamp objects on hot paths.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

ET = "America/New_York"
ET_DTYPE = f"datetime64[ns, {ET}]"
DAY_NS = 86_400 * 10**9
MINUTE_NS = 60 * 10**9
EPOCH = dt.date(1970, 1, 1)
#: the intraday hours any bar may start in (New York): the extended session 04:00-20:00
EXTENDED_HOURS = (4 * 60, 20 * 60)


def ordinal(day: dt.date) -> int:
    """Days since 1970-01-01 (what ``wall_ns(...) // DAY_NS`` gives for a stamp on ``day``)."""
    return (day - EPOCH).days


def from_ordinal(n: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(n))


def wall_ns(index) -> Any:
    """New York wall-clock time of a tz-aware DatetimeIndex as int64 ns since 1970-01-01
    (``// DAY_NS`` is the session day): what ``normalize()`` gives, without its frequency
    inference (the costly part on the warm path)."""
    import numpy as np

    if str(index.dtype) == ET_DTYPE:
        # the UTC offset of each stamp, from the (few) distinct offsets: cheaper than tz_convert
        return np.asarray(index.tz_localize(None).asi8)
    return np.asarray(index.tz_convert(ET).tz_localize(None).as_unit("ns").asi8)


def days_index(day_ordinals) -> Any:
    """Session days (int ordinals) as a DatetimeIndex at 00:00 New York."""
    import numpy as np
    import pandas as pd

    ns = np.asarray(day_ordinals, dtype="int64") * DAY_NS
    return pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize(ET)


def session_days(index) -> Any:
    """The session day (00:00 New York) of each stamp of a tz-aware DatetimeIndex: what
    ``index.normalize()`` gives, without its frequency inference."""
    return days_index(wall_ns(index) // DAY_NS)


def wall_today() -> dt.date:
    """Today's date in New York by the machine's clock. Only :meth:`Config.today` calls it
    (when FINRPT_PROVIDERS_TODAY is not set): everything else asks the configuration, so
    a pinned today is never mixed with the wall clock."""
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(ET)).date()


def midnight(day: dt.date) -> Any:
    """``day`` at 00:00 New York as a pandas Timestamp."""
    import pandas as pd

    return pd.Timestamp(day, tz=ET)
