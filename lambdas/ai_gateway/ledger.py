"""The quota ledger: exact per-group output quotas and one metering record per output.

API Gateway usage plans are best-effort by AWS's own word, so they are the coarse layer; this
ledger is exact. One DynamoDB table holds two kinds of item:

- ``QUOTA#<group>#<output type>#<period>``: ``used`` units in that period;
- ``REQ#<request id>``: the metering record of one output (group, user, type, units, price,
  status, tokens), which doubles as the idempotency key.

Admission is one transaction: create the request record only if it does not exist, and add the
units to the counter only if the total stays within the limit. Concurrent requests therefore
never over-admit, and a retried request id never counts twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from botocore.exceptions import ClientError

Period = Literal["DAY", "MONTH"]


@dataclass(frozen=True)
class Window:
    """A quota period: its key in the ledger and when it resets (UTC)."""

    key: str
    resets_at: dt.datetime

    @classmethod
    def containing(cls, now: dt.datetime, period: Period) -> Window:
        now = now.astimezone(dt.UTC)
        if period == "DAY":
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            return cls(key=start.strftime("%Y-%m-%d"), resets_at=start + dt.timedelta(days=1))
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = (start + dt.timedelta(days=32)).replace(day=1)
        return cls(key=start.strftime("%Y-%m"), resets_at=following)


@dataclass(frozen=True)
class Admission:
    request_id: str
    units: int
    used: int  # units used in the window after this admission
    limit: int
    resets_at: dt.datetime
    replayed: bool  # the request id was admitted before; nothing was counted this time

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


class QuotaExceededError(Exception):
    def __init__(self, *, used: int, limit: int, resets_at: dt.datetime) -> None:
        super().__init__(f"quota exhausted: {used} of {limit} used")
        self.used = used
        self.limit = limit
        self.resets_at = resets_at

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


@dataclass(frozen=True)
class Usage:
    output_type: str
    used: int
    limit: int
    period: Period
    resets_at: dt.datetime

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


class Ledger:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def admit(
        self,
        *,
        request_id: str,
        group: str,
        user: str,
        output_type: str,
        units: int,
        limit: int,
        period: Period,
        unit_price_usd: float,
        now: dt.datetime,
    ) -> Admission:
        """Reserve ``units`` of the group's quota for this request, exactly once.

        Raises QuotaExceededError when the units do not fit in what is left of the window.
        """
        window = Window.containing(now, period)
        counter = _quota_key(group, output_type, window.key)
        if units > limit:
            raise QuotaExceededError(used=self._used(counter), limit=limit, resets_at=window.resets_at)
        record = {
            "pk": {"S": _request_key(request_id)},
            "group": {"S": group},
            "user": {"S": user},
            "output_type": {"S": output_type},
            "units": {"N": str(units)},
            "unit_price_usd": {"N": str(Decimal(str(unit_price_usd)))},
            "amount_usd": {"N": str(Decimal(str(unit_price_usd)) * units)},
            "window": {"S": window.key},
            "status": {"S": "admitted"},
            "created_at": {"S": now.astimezone(dt.UTC).isoformat()},
            # Billing export: every output of a group, in time order.
            "gsi1pk": {"S": f"GROUP#{group}"},
            "gsi1sk": {"S": f"{now.astimezone(dt.UTC).isoformat()}#{request_id}"},
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": record,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"pk": {"S": counter}},
                            "UpdateExpression": "ADD #used :units SET #limit = :limit",
                            "ConditionExpression": "attribute_not_exists(#used) OR #used <= :ceiling",
                            "ExpressionAttributeNames": {"#used": "used", "#limit": "limit"},
                            "ExpressionAttributeValues": {
                                ":units": {"N": str(units)},
                                ":limit": {"N": str(limit)},
                                ":ceiling": {"N": str(limit - units)},
                            },
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            used = self._used(counter)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return Admission(request_id, units, used, limit, window.resets_at, replayed=True)
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise QuotaExceededError(used=used, limit=limit, resets_at=window.resets_at) from None
            raise
        return Admission(request_id, units, self._used(counter), limit, window.resets_at, replayed=False)

    def deliver(self, request_id: str, *, model: str, input_tokens: int, output_tokens: int) -> None:
        """Mark the output delivered and record its tokens (internal cost, not the user's price)."""
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": _request_key(request_id)}},
            UpdateExpression="SET #status = :delivered, model = :model, input_tokens = :in, output_tokens = :out",
            ConditionExpression="#status = :admitted",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":delivered": {"S": "delivered"},
                ":admitted": {"S": "admitted"},
                ":model": {"S": model},
                ":in": {"N": str(input_tokens)},
                ":out": {"N": str(output_tokens)},
            },
        )

    def release(self, request_id: str, *, group: str, output_type: str, units: int, window: str) -> None:
        """Give back an admitted request's units when no output was delivered; once only."""
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"pk": {"S": _request_key(request_id)}},
                            "UpdateExpression": "SET #status = :released",
                            "ConditionExpression": "#status = :admitted",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {
                                ":released": {"S": "released"},
                                ":admitted": {"S": "admitted"},
                            },
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"pk": {"S": _quota_key(group, output_type, window)}},
                            "UpdateExpression": "ADD #used :negative",
                            "ExpressionAttributeNames": {"#used": "used"},
                            "ExpressionAttributeValues": {":negative": {"N": str(-units)}},
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise  # a release that already happened is a cancelled transaction: nothing to do

    def usage(self, group: str, quotas: dict[str, tuple[int, Period]], now: dt.datetime) -> list[Usage]:
        """The group's use of each output type it has a quota for, in the current windows."""
        windows = {name: Window.containing(now, period) for name, (_, period) in quotas.items()}
        keys = [{"pk": {"S": _quota_key(group, name, window.key)}} for name, window in windows.items()]
        found: dict[str, int] = {}
        for start in range(0, len(keys), 100):
            response = self._client.batch_get_item(
                RequestItems={
                    self._table: {
                        "Keys": keys[start : start + 100],
                        "ProjectionExpression": "pk, #used",
                        "ExpressionAttributeNames": {"#used": "used"},
                    }
                }
            )
            for item in response["Responses"].get(self._table, []):
                found[item["pk"]["S"]] = int(item.get("used", {}).get("N", "0"))
        return [
            Usage(
                output_type=name,
                used=found.get(_quota_key(group, name, windows[name].key), 0),
                limit=limit,
                period=period,
                resets_at=windows[name].resets_at,
            )
            for name, (limit, period) in quotas.items()
        ]

    def record(self, request_id: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": _request_key(request_id)}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _used(self, counter: str) -> int:
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": counter}},
            ConsistentRead=True,
            ProjectionExpression="#used",
            ExpressionAttributeNames={"#used": "used"},
        )
        return int(response.get("Item", {}).get("used", {}).get("N", "0"))


def _quota_key(group: str, output_type: str, window: str) -> str:
    return f"QUOTA#{group}#{output_type}#{window}"


def _request_key(request_id: str) -> str:
    return f"REQ#{request_id}"
