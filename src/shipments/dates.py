"""Parsing of dates that come from users, so that nothing downstream ever sees raw text."""

from __future__ import annotations

import datetime as dt
import re

from shipments.errors import ConfigError

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(text: str, *, name: str = "date") -> dt.date:
    """Parse ``YYYY-MM-DD`` into a real calendar date.

    Only the exact ten-character form is accepted, so a value such as
    ``2026-11-02' OR '1'='1`` can never reach a Delta predicate.

    Raises:
        ConfigError: the text is not a valid calendar date in that form.
    """
    if not _ISO_DATE.fullmatch(text):
        raise ConfigError(f"invalid {name} {text!r}: expected YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"invalid {name} {text!r}: not a calendar date") from None


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end`` inclusive."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
