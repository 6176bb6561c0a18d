"""Excel's dates and times read as Excel shows them, not as the numbers it stores.

A workbook stores a date as a serial number (days since its epoch, the time of day as the
fraction) and says it is one only through the cell's number format. Read bare, 31 December 2023
at 18:00 is "45291.75", which no one searches for. A cell whose format is a date or a time is
therefore read as ISO 8601: ``2023-12-31``, ``18:00:00`` or ``2023-12-31 18:00:00``; an elapsed
time (``[h]:mm``) as hours, minutes and seconds (``36:30:00``). Everything else stays as stored.

Which formats are dates follows Excel (and openpyxl, which the tests hold this to): the built-in
formats 14-22, 45 and 47 (46 is elapsed time), and a format of its own whose first section names a
day, month, year, hour or second outside quoted text, escapes and bracketed colours or locales. The
East Asian built-ins (27-36, 50-58) depend on the reader's locale and are read as numbers.
"""

from __future__ import annotations

import datetime as dt
import math
import re

BUILTIN_DATES = {**dict.fromkeys(range(14, 18), "date"), 18: "time", 19: "time", 20: "time", 21: "time"}
BUILTIN_DATES |= {22: "datetime", 45: "time", 46: "elapsed", 47: "time"}
_LITERALS = re.compile(r'"[^"]*"|\\.|[_*].')  # quoted text, an escaped character, padding and fill
_BRACKETS = re.compile(r"\[[^\]]*\]")  # colours, conditions, locales (elapsed units are looked for first)
_ELAPSED = re.compile(r"\[(h+|m+|s+)\]")
_EPOCH_1900 = dt.datetime(1899, 12, 30)  # serial 61 is 1 March 1900: Excel counts a 29 February 1900
_EPOCH_1904 = dt.datetime(1904, 1, 1)


def format_kind(code: str) -> str | None:
    """'date', 'time', 'datetime' or 'elapsed' for a number format code that shows a number as
    one, None for any other."""
    bare = _LITERALS.sub("", code).split(";")[0].lower()
    if _ELAPSED.search(bare):
        return "elapsed"
    bare = _BRACKETS.sub("", bare)
    time = "h" in bare or "s" in bare
    date = "y" in bare or "d" in bare or ("m" in bare and not time)
    return "datetime" if date and time else "date" if date else "time" if time else None


def shown(value: str, kind: str, *, date1904: bool = False) -> str:
    """A stored number as a cell of the format kind shows it; the number itself when it is not
    one or is out of the range Excel shows (negative, past 9999, the 1900 system's 29 February
    and the days before its first)."""
    try:
        serial = float(value)
    except ValueError:
        return value
    if not math.isfinite(serial) or serial < 0 or serial > 1e7:  # past 9999 in either system
        return value
    seconds = round(serial * 86_400)
    if kind == "elapsed":
        return f"{seconds // 3600}:{seconds // 60 % 60:02}:{seconds % 60:02}"
    if kind != "time" and not date1904 and serial < 61:
        if serial < 1 or serial >= 60:  # day 0 and Excel's 29 February 1900 are no dates
            return value
        seconds += 86_400  # before the day Excel counts that never was
    try:
        moment = (_EPOCH_1904 if date1904 else _EPOCH_1900) + dt.timedelta(seconds=seconds)
    except OverflowError:  # past 9999
        return value
    if kind == "time":
        return moment.time().isoformat()
    if kind == "date":
        return moment.date().isoformat()
    return moment.isoformat(" ")
