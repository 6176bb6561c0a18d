"""The quota ledger: exact per-group output quotas and one metering record per output.

API Gateway usage plans are best-effort by AWS's own word, so they are the coarse layer; this
ledger is exact. One DynamoDB table holds two kinds of item:

- ``QUOTA#<group>#<output type>#<period>``: ``used`` units in that period;
- ``REQ#<group>#<user>#<request id>``: the metering record of one output (group, user, type,
  units, price, status, tokens), which doubles as the idempotency key. Keys are scoped to the
  caller, so two callers can never collide on a client-chosen key.

Admission is one transaction: create the request record only if it does not exist, and add the
units to the counter only if the total stays within the limit. Concurrent requests therefore
never over-admit, and a retried request id never counts twice. A request whose units were
released (nothing was delivered) may be admitted again under the same id.

Every request of a group updates one counter item, so DynamoDB cancels transactions that race
on it (TransactionConflict); those are retried here with jittered backoff.

A request record's status goes ``admitted`` → ``delivered`` (the output was handed over; its
tokens recorded) or ``released`` (no output: the units went back), or, for a stream, ``admitted``
→ ``delivering`` (begin_delivery, before its first text leaves) → ``delivered``. Only an
``admitted`` request is released by anyone but its own function (which may release a
``delivering`` one it knows sent nothing): once an output has started on its way to the caller,
its units stay charged.

An unsettled record (admitted or delivering) also carries ``pending`` (one of PENDING_SHARDS
labels) and ``pending_at`` (its admission time): the keys of a sparse index (PENDING_INDEX) that
deliver and release remove, so the index holds exactly the unsettled requests. The sweeper
(ai_gateway.sweeper) reads it, oldest first, to settle what a function that died left: it releases
an admitted request and settles a delivering one as delivered (settle_delivering).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from shared.aws_errors import Kind, UpstreamError

Period = Literal["DAY", "MONTH"]
CONFLICT_ATTEMPTS = 6  # calls of a transaction (or a usage read) before its error is raised
BACKOFF_SECONDS = 0.02  # the first retry's jitter ceiling; it doubles with each attempt
UNPROCESSED_KEYS = "UnprocessedKeys"  # the code of a usage read DynamoDB left keys of after every attempt
# The sparse index of admitted, unsettled requests: its partition key is one of PENDING_SHARDS
# labels (spread by request key, so admissions do not all write one index partition), its sort key
# the admission time. Only what a release needs is projected.
PENDING_INDEX = "pending"
PENDING_KEY = "pending"
PENDING_SORT_KEY = "pending_at"
PENDING_PAGES_PER_SHARD = 4  # pages a sweep reads of one shard at most (a page holds up to its limit)
PENDING_SHARDS = 8
PENDING_PROJECTION = ("request_id", "group", "user", "output_type", "units", "window")
# The billing export's index: every output of a group (its partition key), in time order.
BILLING_INDEX = "gsi1"
BILLING_KEY = "gsi1pk"
BILLING_SORT_KEY = "gsi1sk"
# A request record's statuses (module docstring).
ADMITTED = "admitted"
DELIVERING = "delivering"
DELIVERED = "delivered"
RELEASED = "released"
SWEEPER = "sweeper"  # settled_by of a delivery the sweeper settled (its tokens are not known)


@dataclass(frozen=True)
class Window:
    """A quota period: its key in the ledger and when it resets (UTC)."""

    key: str
    resets_at: dt.datetime

    @classmethod
    def containing(cls, now: dt.datetime, period: Period) -> Window:
        now = now.astimezone(dt.UTC)
        if period == "DAY":
            start = dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC)
            return cls(key=start.date().isoformat(), resets_at=start + dt.timedelta(days=1))
        following = dt.datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=dt.UTC)
        return cls(key=now.strftime("%Y-%m"), resets_at=following)


@dataclass(frozen=True)
class Admission:
    request_id: str
    units: int
    used: int  # units used in the window after this admission
    limit: int
    resets_at: dt.datetime
    replayed: bool  # the request id was admitted before; nothing was counted this time
    window: str  # the quota window's key, which release() needs
    delivered: bool = False  # replayed: that earlier request's output was delivered (it cannot change)

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


@dataclass(frozen=True)
class Pending:
    """An unsettled request (admitted or delivering), as the pending index holds it."""

    request_id: str
    group: str
    user: str
    output_type: str
    units: int
    window: str
    admitted_at: str  # ISO 8601, UTC


class Ledger:
    def __init__(self, client: Any, table_name: str, *, sleep: Callable[[float], None] | None = None) -> None:
        self._client = client
        self._table = table_name
        self._sleep = sleep or time.sleep  # looked up when the ledger is made, so a test can inject it

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

        Raises QuotaExceededError when the units do not fit in what is left of the window. A
        replay (its record admitted or delivered) is answered as one whatever the limit is now.
        Admitted, but the counter not read back (for the caller's remaining units): the units are
        released at once and the read's error raised, so a failed request holds nothing and its
        retry under the same id is admitted again.
        """
        window = Window.containing(now, period)
        counter = _quota_key(group, output_type, window.key)
        key = _request_key(group, user, request_id)
        if units > limit:
            # No transaction to find the replay: a limit lowered since must not refuse it as new.
            status = (self.record(request_id, group=group, user=user) or {}).get("status", {}).get("S")
            if status is not None and status != RELEASED:
                admission = Admission(request_id, units, self._used(counter), limit, window.resets_at, True, window.key)
                return replace(admission, delivered=status == DELIVERED)
            raise QuotaExceededError(used=self._used(counter), limit=limit, resets_at=window.resets_at)
        record = {
            "pk": {"S": key},
            "request_id": {"S": request_id},
            "group": {"S": group},
            "user": {"S": user},
            "output_type": {"S": output_type},
            "units": {"N": str(units)},
            "unit_price_usd": {"N": str(Decimal(str(unit_price_usd)))},
            "amount_usd": {"N": str(Decimal(str(unit_price_usd)) * units)},
            "window": {"S": window.key},
            "status": {"S": ADMITTED},
            "created_at": {"S": now.astimezone(dt.UTC).isoformat()},
            # Billing export: every output of a group, in time order.
            BILLING_KEY: {"S": f"GROUP#{group}"},
            BILLING_SORT_KEY: {"S": f"{now.astimezone(dt.UTC).isoformat()}#{request_id}"},
            # Pending index: present while the units are admitted, removed by deliver and release.
            PENDING_KEY: {"S": pending_shard(key)},
            PENDING_SORT_KEY: {"S": now.astimezone(dt.UTC).isoformat()},
        }
        try:
            self._transact(
                [
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": record,
                            "ConditionExpression": "attribute_not_exists(pk) OR #status = :released",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {":released": {"S": RELEASED}},
                            # A replay's record, to tell a delivered request from one still running.
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
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
            reasons = _cancellation_reasons(error)
            if reasons is None:
                raise
            used = self._used(counter)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                earlier = (error.response.get("CancellationReasons") or [{}])[0].get("Item") or {}
                delivered = earlier.get("status") == {"S": DELIVERED}
                return Admission(
                    request_id,
                    units,
                    used,
                    limit,
                    window.resets_at,
                    replayed=True,
                    window=window.key,
                    delivered=delivered,
                )
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise QuotaExceededError(used=used, limit=limit, resets_at=window.resets_at) from None
            raise
        try:
            used = self._used(counter)
        except (ClientError, BotoCoreError):
            with contextlib.suppress(ClientError, BotoCoreError):  # else the sweeper releases them
                self.release(
                    request_id, group=group, user=user, output_type=output_type, units=units, window=window.key
                )
            raise
        return Admission(request_id, units, used, limit, window.resets_at, replayed=False, window=window.key)

    def begin_delivery(self, request_id: str, *, group: str, user: str) -> None:
        """Mark an admitted request's output as on its way to the caller (a stream's first text is
        about to leave): from here its units are released only by that function (release's
        ``marked``), and if the function dies before deliver records the output, the sweeper
        settles it as delivered. Marking a delivering request again is no change (a retry of a
        write whose answer was lost). Raises ClientError (ConditionalCheckFailedException) when
        the request is settled."""
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": _request_key(group, user, request_id)}},
            UpdateExpression="SET #status = :delivering",
            ConditionExpression="#status IN (:admitted, :delivering)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":delivering": {"S": DELIVERING}, ":admitted": {"S": ADMITTED}},
        )

    def deliver(
        self, request_id: str, *, group: str, user: str, model: str, input_tokens: int, output_tokens: int
    ) -> None:
        """Mark the output delivered and record its tokens (internal cost, not the user's price)."""
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": _request_key(group, user, request_id)}},
            UpdateExpression="SET #status = :delivered, model = :model, input_tokens = :in, output_tokens = :out "
            "REMOVE #pending, #pending_at",
            ConditionExpression="#status IN (:admitted, :delivering)",
            ExpressionAttributeNames={"#status": "status", "#pending": PENDING_KEY, "#pending_at": PENDING_SORT_KEY},
            ExpressionAttributeValues={
                ":delivered": {"S": DELIVERED},
                ":admitted": {"S": ADMITTED},
                ":delivering": {"S": DELIVERING},
                ":model": {"S": model},
                ":in": {"N": str(input_tokens)},
                ":out": {"N": str(output_tokens)},
            },
        )

    def settle_delivering(self, request: Pending) -> bool:
        """The sweeper's: a request whose output began its way to the caller (begin_delivery) and
        whose function died before recording it is delivered (its tokens unknown, settled_by the
        sweeper); its units stay charged. True when this call settled it; False when it is not
        delivering (admitted, or settled already)."""
        return self._settle_listed(
            request,
            "SET #status = :delivered, settled_by = :sweeper REMOVE #pending, #pending_at",
            # Only the admission listed: one made again under the request's id since is live.
            "#status = :delivering AND #pending_at = :admitted_at",
            {
                ":delivered": {"S": DELIVERED},
                ":delivering": {"S": DELIVERING},
                ":sweeper": {"S": SWEEPER},
                ":admitted_at": {"S": request.admitted_at},
            },
        )

    def release(
        self,
        request_id: str,
        *,
        group: str,
        user: str,
        output_type: str,
        units: int,
        window: str,
        marked: bool = False,
        admitted_at: str | None = None,
    ) -> bool:
        """Give back an admitted request's units when no output was delivered; once only. True when
        this call released them, False when the request was already released or delivered, is
        being delivered, or was admitted with other units, output type or window than these: units
        go back only to the counter that holds them, however the caller came by them.

        ``marked``: the request's own function, which marked it delivering (begin_delivery) and
        knows none of its output left after all (the mark's answer was lost, or the stream failed
        before its first text), may release it from ``delivering`` too. Nobody else may.

        ``admitted_at``: the sweeper's, the admission time its listing holds (Pending.admitted_at):
        only that admission is released. A request released and admitted again under its id (a
        retry) is another, live admission, which a stale listing (runs that overlap) must not give
        back."""
        statuses = "(:admitted, :delivering)" if marked else "(:admitted)"
        values: dict[str, Any] = {":delivering": {"S": DELIVERING}} if marked else {}
        condition = f"#status IN {statuses} AND #units = :units AND #output_type = :output_type AND #window = :window"
        if admitted_at is not None:
            condition += " AND #pending_at = :admitted_at"
            values[":admitted_at"] = {"S": admitted_at}
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"pk": {"S": _request_key(group, user, request_id)}},
                            "UpdateExpression": "SET #status = :released REMOVE #pending, #pending_at",
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": {
                                "#status": "status",
                                "#pending": PENDING_KEY,
                                "#pending_at": PENDING_SORT_KEY,
                                "#units": "units",
                                "#output_type": "output_type",
                                "#window": "window",
                            },
                            "ExpressionAttributeValues": {
                                ":released": {"S": RELEASED},
                                ":admitted": {"S": ADMITTED},
                                **values,
                                ":units": {"N": str(units)},
                                ":output_type": {"S": output_type},
                                ":window": {"S": window},
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
            # Already released (or delivered): the record's condition failed, nothing to give back.
            reasons = _cancellation_reasons(error) or []
            if not reasons or reasons[0] != "ConditionalCheckFailed":
                raise
            return False
        return True

    def unlist_settled(self, request: Pending) -> bool:
        """Take a request out of the pending index if it is settled (delivered or released) and
        still listed there: deliver and release remove it from the index, so only a hand-edited or
        half-written record stays, and one the sweeper could never settle would fill its every
        page. True when this call took it out; False when it is not settled (admitted or
        delivering), or not listed anymore (the index lags the table: a request settled a moment
        ago is still listed for a while)."""
        return self._settle_listed(
            request,
            "REMOVE #pending, #pending_at",
            "attribute_exists(#pending) AND NOT #status IN (:admitted, :delivering)",
            {":admitted": {"S": ADMITTED}, ":delivering": {"S": DELIVERING}},
        )

    def _settle_listed(self, request: Pending, update: str, condition: str, values: dict[str, Any]) -> bool:
        """The sweeper's conditional update of a listed request's record (``#status``, ``#pending``
        and ``#pending_at`` named); False when its condition fails."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _request_key(request.group, request.user, request.request_id)}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={
                    "#status": "status",
                    "#pending": PENDING_KEY,
                    "#pending_at": PENDING_SORT_KEY,
                },
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def pending(
        self,
        *,
        admitted_before: dt.datetime,
        limit: int,
        unreadable: Callable[[str], None] = lambda _: None,
        first_shard: int = 0,
    ) -> list[Pending]:
        """Up to ``limit`` requests admitted before ``admitted_before`` and neither delivered nor
        released, oldest first within each shard, the shards read from ``first_shard`` on (the
        pending index; eventually consistent, so a request settled a moment ago may still be
        listed: release's condition decides). A record this code cannot read (an attribute missing
        or of another type) is left where it is and named to ``unreadable`` by what is wrong with
        it: one bad record must not stop the rest."""
        before = admitted_before.astimezone(dt.UTC).isoformat()
        found: list[Pending] = []
        for offset in range(PENDING_SHARDS):
            shard = (first_shard + offset) % PENDING_SHARDS
            start: dict[str, Any] | None = None
            # Unreadable records stay listed, oldest first: a shard is read on past them (a few pages)
            # so that they cannot hide the requests admitted after them.
            for _ in range(PENDING_PAGES_PER_SHARD):
                if len(found) >= limit:
                    return found
                response = self._client.query(
                    TableName=self._table,
                    IndexName=PENDING_INDEX,
                    KeyConditionExpression="#pending = :shard AND #pending_at < :before",
                    ExpressionAttributeNames={"#pending": PENDING_KEY, "#pending_at": PENDING_SORT_KEY},
                    ExpressionAttributeValues={":shard": {"S": _shard_label(shard)}, ":before": {"S": before}},
                    Limit=limit - len(found),
                    **({"ExclusiveStartKey": start} if start else {}),
                )
                for item in response.get("Items", []):
                    try:
                        found.append(_pending(item))
                    except UnreadableRecordError as error:
                        unreadable(str(error))
                start = response.get("LastEvaluatedKey")
                if not start:
                    break
        return found

    def usage(self, group: str, quotas: dict[str, tuple[int, Period]], now: dt.datetime) -> list[Usage]:
        """The group's use of each output type it has a quota for, in the current windows."""
        windows = {name: Window.containing(now, period) for name, (_, period) in quotas.items()}
        keys = [{"pk": {"S": _quota_key(group, name, window.key)}} for name, window in windows.items()]
        found: dict[str, int] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": keys[start : start + 100],
                    "ProjectionExpression": "pk, #used",
                    "ExpressionAttributeNames": {"#used": "used"},
                    "ConsistentRead": True,
                }
            }
            for attempt in range(CONFLICT_ATTEMPTS):
                if attempt:  # DynamoDB left keys unprocessed: back off, then ask for those again
                    self._backoff(attempt - 1)
                response = self._client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self._table, []):
                    found[item["pk"]["S"]] = int(item["used"]["N"])  # a counter is made by adding to it
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:  # DynamoDB leaves keys unprocessed when the table is throttled: the caller may retry
                raise UpstreamError("dynamodb", UNPROCESSED_KEYS, kind=Kind.THROTTLED)
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

    def record(self, request_id: str, *, group: str, user: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": _request_key(group, user, request_id)}}, ConsistentRead=True
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
        item = response.get("Item")
        return int(item["used"]["N"]) if item else 0  # no counter yet: nothing used in the window

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems, retrying cancellations caused only by a concurrent transaction.

        Each call carries its own ClientRequestToken, which botocore sends again with its retries of
        that call: a transaction that landed though its answer was lost (a read timeout, a 500) is
        then answered as the success it was (DynamoDB keeps a token's outcome for 10 minutes),
        rather than failing its own conditions, which admission would read as a replay (a 409 for a
        request that holds units) and release as already settled. botocore fills one in when none
        is given (the parameter's idempotency trait); it is chosen here because the ledger's
        exactly-once counting rests on it. A call cancelled for a conflict changed nothing: its
        retry is a new call, with a new token."""
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=items, ClientRequestToken=uuid.uuid4().hex)
                return
            except ClientError as error:
                reasons = _cancellation_reasons(error) or []
                retryable = "TransactionConflict" in reasons and "ConditionalCheckFailed" not in reasons
                if not retryable or attempt == CONFLICT_ATTEMPTS - 1:
                    raise
                self._backoff(attempt)

    def _backoff(self, attempt: int) -> None:
        self._sleep(random.uniform(0, BACKOFF_SECONDS * 2**attempt))  # noqa: S311 - jitter, not cryptography


def _cancellation_reasons(error: ClientError) -> list[str] | None:
    """Per-item cancellation codes of a cancelled transaction; None for any other error."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    return [str(reason.get("Code")) for reason in error.response.get("CancellationReasons", [])]


class UnreadableRecordError(ValueError):
    """A ledger record without an attribute this code needs, or with one of another type."""


_PENDING_TEXT = ("request_id", "group", "user", "output_type", "window", PENDING_SORT_KEY)


def _pending(item: dict[str, Any]) -> Pending:
    """A pending index item as a Pending; UnreadableRecordError names the attribute that is not one."""
    text: dict[str, str] = {}
    for name in _PENDING_TEXT:
        value = item.get(name)
        if not isinstance(value, dict) or not isinstance(value.get("S"), str):
            raise UnreadableRecordError(f"{name}: not a string")
        text[name] = value["S"]
    units = item.get("units")
    number = units.get("N") if isinstance(units, dict) else None
    if not isinstance(number, str) or not number.isdigit() or len(number) > 18 or int(number) < 1:
        raise UnreadableRecordError("units: not a whole number above 0")
    key = item.get("pk")
    if not isinstance(key, dict) or key.get("S") != _request_key(text["group"], text["user"], text["request_id"]):
        # Released by its attributes, the record would be another's (or none): never released.
        raise UnreadableRecordError("pk: not the key its group, user and request_id make")
    return Pending(
        request_id=text["request_id"],
        group=text["group"],
        user=text["user"],
        output_type=text["output_type"],
        units=int(number),
        window=text["window"],
        admitted_at=text[PENDING_SORT_KEY],
    )


def pending_shard(key: str) -> str:
    """The pending index's partition for a request record's key (stable, spread evenly)."""
    digest = hashlib.sha256(key.encode()).digest()
    return _shard_label(int.from_bytes(digest[:4], "big") % PENDING_SHARDS)


def _shard_label(shard: int) -> str:
    return f"PENDING#{shard}"


def _quota_key(group: str, output_type: str, window: str) -> str:
    return f"QUOTA#{group}#{output_type}#{window}"


def _request_key(group: str, user: str, request_id: str) -> str:
    return f"REQ#{group}#{user}#{request_id}"
