"""The guarded transcript of a session: each piece of a conversation's text is checked once.

A chat client resends the whole conversation on every turn. Without a memory of what was already
checked, the input guardrail would see every earlier turn again, and its time and cost would grow
with the square of a conversation's length. For a caller's session (a session id the client
sends), the gateway keeps what it has checked and delivered:

- for each text the input guardrail passed, a digest of the (role, text) the client sent, and the
  text as the model may see it when the guardrail masked it (none when it went through as sent);
- for each answer the gateway delivered, the digest of the answer as the caller received it
  (already through the output guardrail).

A turn's texts whose digest is in the transcript are used as stored and not checked again; every
other text (the new turn, and any earlier turn the client changed, added or forged) is checked.
Nothing is refused for differing: what differs is checked like new text. Matching is by content,
not position, so a client that edits its system text or drops old turns pays only for what changed.

**What is stored.** One DynamoDB item per session (``conversation``: the session's runtime id,
derived from the caller's group, user and session id, so one caller can never read another's),
encrypted with the tier key, expiring ``ttl_seconds`` after its last turn (an expired item is
ignored before DynamoDB deletes it). Digests are HMAC-SHA256 under a random per-session salt:
the client's raw text is never stored, only the guardrail's masked version where it masked. The
item names the guardrail version that checked it: after a guardrail change, everything is checked
again. Each turn rewrites the item with the current request's texts and answer only, so an item is
never larger than one request plus its answer (a larger one is not written).

**Never a reason to fail a turn.** The transcript only saves checks: an unreadable, malformed or
expired item reads as empty (everything checked, as without a session); a write that fails or
loses a race with a concurrent turn of the same session (the item's version) is skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ai_gateway.models import Caller
from shared.aws_errors import UpstreamError, call

KEY = "conversation"
TTL_ATTRIBUTE = "expires_at"
SALT_BYTES = 16
# What one item may hold of text and digests (DynamoDB's item limit is 400 KB; UTF-8 may take up to
# 4 bytes a character, so the bound is in bytes).
MAX_ITEM_BYTES = 350_000
CONDITION_FAILED = "ConditionalCheckFailedException"
ASSISTANT = "assistant"  # the role of a delivered answer
Turn = tuple[str, str]  # (role, text)


@dataclass(frozen=True)
class Known:
    """What a session's transcript holds: digest -> the text as stored (None: as the client sent it)."""

    salt: bytes
    version: int = 0  # 0: no item
    entries: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Known:
        return cls(salt=os.urandom(SALT_BYTES))

    def digest(self, role: str, text: str) -> str:
        return hmac.new(self.salt, f"{role}\n{text}".encode(), hashlib.sha256).hexdigest()

    def screened(self, role: str, text: str) -> str | None:
        """The text as checked before (masked where the guardrail masked it), or None if it was not."""
        digest = self.digest(role, text)
        if digest not in self.entries:
            return None
        stored = self.entries[digest]
        return text if stored is None else stored


class Transcripts:
    """The sessions' transcripts in one DynamoDB table (key ``conversation``, TTL ``expires_at``)."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        guardrail: str,
        ttl_seconds: int,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._client = client
        self._table = table
        self._guardrail = guardrail  # "<id>:<version>": what checked the stored texts
        self._ttl_seconds = ttl_seconds
        self._now = now

    def read(self, conversation: str, caller: Caller) -> Known:
        """The session's transcript; empty when there is none usable (see the module docstring).
        Raises UpstreamError when DynamoDB fails (the caller reads that as empty too)."""
        with call("dynamodb"):
            response = self._client.get_item(TableName=self._table, Key={KEY: {"S": conversation}}, ConsistentRead=True)
        item = response.get("Item")
        return self._parse(item, caller) if isinstance(item, dict) else Known.empty()

    def write(self, conversation: str, caller: Caller, known: Known, turns: Sequence[tuple[str, str, str]]) -> bool:
        """The session's transcript after a delivered turn: ``turns`` as (role, text sent, text as
        screened), the answer among them. False when not written: too large, or a concurrent turn
        wrote first. Raises UpstreamError when DynamoDB fails."""
        same: set[str] = set()
        masked: dict[str, str] = {}
        size = 0
        for role, sent, screened in turns:
            digest = known.digest(role, sent)
            size += len(digest)
            if screened == sent:
                same.add(digest)
            else:
                masked[digest] = screened
                size += len(screened.encode())
        if size > MAX_ITEM_BYTES:
            return False
        item: dict[str, Any] = {
            KEY: {"S": conversation},
            "group": {"S": caller.group},
            "user": {"S": caller.user},
            "guardrail": {"S": self._guardrail},
            "salt": {"B": known.salt},
            "version": {"N": str(known.version + 1)},
            TTL_ATTRIBUTE: {"N": str(int(self._now().timestamp()) + self._ttl_seconds)},
        }
        if same:
            item["same"] = {"SS": sorted(same)}
        if masked:
            item["masked"] = {"M": {digest: {"S": text} for digest, text in masked.items()}}
        try:
            with call("dynamodb"):
                self._client.put_item(
                    TableName=self._table,
                    Item=item,
                    # Written over the version this turn read, or created if there was none.
                    ConditionExpression="attribute_not_exists(#key) OR #version = :read",
                    ExpressionAttributeNames={"#key": KEY, "#version": "version"},
                    ExpressionAttributeValues={":read": {"N": str(known.version)}},
                )
        except UpstreamError as error:
            if error.code == CONDITION_FAILED:
                return False
            raise
        return True

    def _parse(self, item: dict[str, Any], caller: Caller) -> Known:
        """The stored transcript, if it is this caller's, under this guardrail, unexpired and well
        formed. Otherwise nothing of it is used, but this caller's turn writes over the version it
        holds (an item checked by a replaced guardrail, or expired and not yet deleted by DynamoDB,
        would otherwise refuse every write until DynamoDB deletes it)."""
        try:
            if item["group"]["S"] != caller.group or item["user"]["S"] != caller.user:
                return Known.empty()  # another caller's: neither read nor written over
            version = int(item["version"]["N"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return Known.empty()
        stale = Known(salt=os.urandom(SALT_BYTES), version=version)
        try:
            if item["guardrail"]["S"] != self._guardrail or int(item[TTL_ATTRIBUTE]["N"]) <= self._now().timestamp():
                return stale
            salt = item["salt"]["B"]
            entries: dict[str, str | None] = dict.fromkeys(item.get("same", {"SS": []})["SS"])
            for digest, value in item.get("masked", {"M": {}})["M"].items():
                entries[digest] = value["S"]
        except (KeyError, TypeError, ValueError, AttributeError):
            return stale
        if not isinstance(salt, bytes) or len(salt) != SALT_BYTES or version < 1:
            return stale
        if not all(isinstance(d, str) and (v is None or isinstance(v, str)) for d, v in entries.items()):
            return stale
        return Known(salt=salt, version=version, entries=entries)


@dataclass(frozen=True)
class Draft:
    """A turn's transcript, written once its answer is delivered: the turn's texts as (role, text
    sent, text as screened), and the answer added as the caller received it."""

    store: Transcripts
    conversation: str
    caller: Caller
    known: Known
    turns: tuple[tuple[str, str, str], ...]

    def save(self, answer: str) -> bool:
        """Write it (False: not written, see Transcripts.write; UpstreamError: DynamoDB failed)."""
        return self.store.write(self.conversation, self.caller, self.known, [*self.turns, (ASSISTANT, answer, answer)])
