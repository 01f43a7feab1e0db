"""The NYSE calendar (exchange_calendars ``XNYS``): how many sessions a price table is behind.

Used by the ``curated_prices_are_fresh`` check. Today's session is not counted (its close may
not be in yet), so data whose latest date is the previous session is 0 sessions behind.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import pandas as pd


@lru_cache(maxsize=1)
def xnys():
    """The XNYS calendar (loaded once; exchange_calendars is imported lazily: it is slow)."""
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS")


def sessions_behind(latest: date, today: date) -> int:
    """XNYS sessions strictly after ``latest`` and strictly before ``today`` (0 if none).

    E.g. latest Tue 2024-03-26, today Mon 2024-04-01: 03-27 and 03-28 (Good Friday 03-29 is a
    holiday) = 2. Dates outside the calendar's range count as Monday-Friday days.
    """
    if latest >= today:
        return 0
    start, end = (
        pd.Timestamp(latest) + pd.Timedelta(days=1),
        pd.Timestamp(today) - pd.Timedelta(days=1),
    )
    if start > end:
        return 0
    cal = xnys()
    first, last = cal.first_session.tz_localize(None), cal.last_session.tz_localize(None)
    if start < first or end > last:
        return len(pd.bdate_range(start, end))
    return len(cal.sessions_in_range(start, end))
