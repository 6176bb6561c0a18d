"""What a connector keeps of each source in the document registry: the change of each record id
it landed last (both connectors), in the source's own partition (a pull source's watermark and
lease are there too). Apart from shared.landing, which the config package imports for its prefix
and patterns, so that importing it loads no AWS SDK."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

# How far ahead of a connector's clock a record's change time may be (the source's clock may run a
# little fast): a later one, claimed, would hold back its id's every real change until that time.
CLOCK_SKEW = dt.timedelta(minutes=5)


def utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC, as claim_change compares it; one without an offset is taken as UTC (as
    on Lambda), not as the machine's local time. OverflowError past UTC's years (year 1 at +14:00)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def state_partition(source: str) -> str:
    """The registry partition of one connector source's own items (a pull source's watermark and
    lease; the change landed last of each record id, for both connectors): the handlers' key, and
    the leading key their roles are held to. Push and pull sources never share a name (config)."""
    return f"connector#{source}"


def claim_change(table: Any, source: str, record_id: str, changed: dt.datetime) -> bool:
    """Whether this change of ``record_id`` lands: none of it landed before, or one no later (the
    same change again: a call that failed between its claim and its landing repeats it). An older
    change arriving after a newer one landed (a pull listing that spans runs, a push sent again
    or out of order) would otherwise be left current for good. ``changed`` is in UTC: ISO times
    of one zone compare as text."""
    stamp = changed.isoformat()
    try:
        table.put_item(
            Item={"pk": state_partition(source), "sk": f"landed#{record_id}", "changed": stamp},
            ConditionExpression="attribute_not_exists(pk) OR changed <= :changed",
            ExpressionAttributeValues={":changed": stamp},
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True
