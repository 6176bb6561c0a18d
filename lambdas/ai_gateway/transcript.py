"""The guarded transcript of a session: a conversation's resent history is not checked again.

A chat client resends the whole conversation on every turn. Without a memory of what was already
checked, the input guardrail would see every earlier turn again, and its time and cost would grow
with the square of a conversation's length. For a caller's session (a session id the client
sends), the gateway keeps what the input guardrail has passed, **by position**: for each text of a
turn, a digest chained over everything before it (HMAC-SHA256 under a per-session salt of the
previous digest, the role and the text), and the text as the model may see it where the guardrail
masked it.

On the next turn, the longest leading run of texts whose chained digests are all in the transcript
is used as stored (masked stays masked) and not checked again. Everything from the first text that
differs on is checked: an edited, reordered, dropped, forged or re-roled turn ends the match there,
so a client can never assemble from separately checked pieces a conversation the guardrail did not
see in that order. Where the match ends inside a run of consecutive same-role texts (which a
Converse request joins into one message), the whole run is checked together. The newest texts are
always checked: the caller's new turn together with the answer it replies to (an answer passed
only the output guardrail, which has no prompt-attack filter, so it enters the transcript once the
input guardrail has seen it resent). Nothing is refused for differing: it is checked like new text.

**A client that names no session** (the openai SDKs, LangChain's ChatOpenAI and most OpenAI-API
clients send none) resends its conversation all the same: its transcript is kept under the
conversation's **thread** (:func:`thread_of`), a digest of the texts it resends unchanged on every
turn, up to and including its first user text. Two conversations of one caller that open alike
share a thread: each turn rewrites it with its own texts, so the other's next turn matches less
and is checked more, never less (the chained digests still decide what is used).

**What is stored.** One DynamoDB item per session (``conversation``: the session's runtime id,
derived from the caller's group, user and session id), encrypted with the tier key, expiring
``ttl_seconds`` after its last turn (an expired item is ignored before DynamoDB deletes it). The
item holds the chained digests, the masked version of each text the guardrail masked (the rest of
the conversation text as masked: what the configured PII types do not cover stays readable), a
digest of the caller's group and user (their ids are not stored), and the guardrail version that
checked it: after a guardrail change, everything is checked again. Each turn rewrites the item with
that turn's texts only, so an item is never larger than one request (a larger one is not written).

**Never a reason to fail a turn.** The transcript only saves checks: an unreadable, malformed or
expired item reads as empty (everything checked); a write that fails, is too
large or loses a race with a concurrent turn of the same session (the item's version) is skipped.
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
# What the gateway does to a session's item: read it, write it over the version it read.
ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem")
ASSISTANT = "assistant"  # the role of a delivered answer
USER = "user"
Turn = tuple[str, str]  # (role, text)


def thread_of(turns: Sequence[Turn]) -> str | None:
    """The thread a request that names no session continues: a digest of its texts up to and
    including its first user text, which a client resends unchanged on every turn of the
    conversation (None when it has no user text)."""
    opening = next((n + 1 for n, (role, _) in enumerate(turns) if role == USER), None)
    if opening is None:
        return None
    digest = hashlib.sha256()
    for role, text in turns[:opening]:
        digest.update(f"{len(role)}:{role}{len(text)}:{text}".encode())
    return f"thread-{digest.hexdigest()}"


@dataclass(frozen=True)
class Known:
    """What a session's transcript holds: chained digest -> the text as stored (None: as sent)."""

    salt: bytes
    version: int = 0  # 0: no item
    entries: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Known:
        return cls(salt=os.urandom(SALT_BYTES))

    def chain(self, turns: Sequence[Turn]) -> list[str]:
        """Each text's digest, chained over every text before it (position and history count)."""
        digests: list[str] = []
        previous = ""
        for role, text in turns:
            previous = hmac.new(self.salt, f"{previous}\n{role}\n{text}".encode(), hashlib.sha256).hexdigest()
            digests.append(previous)
        return digests

    def owner(self, caller: Caller) -> str:
        """Whose session this is, without the caller's ids."""
        return hmac.new(self.salt, f"{caller.group}\n{caller.user}".encode(), hashlib.sha256).hexdigest()

    def prefix(self, turns: Sequence[Turn]) -> list[str]:
        """The texts of the longest leading run of ``turns`` the transcript holds, as stored."""
        stored: list[str] = []
        for (_, text), digest in zip(turns, self.chain(turns), strict=True):
            if digest not in self.entries:
                break
            kept = self.entries[digest]
            stored.append(text if kept is None else kept)
        return stored


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
        self._transcripts_table = table
        self._guardrail = guardrail  # "<id>:<version>": what checked the stored texts
        self._ttl_seconds = ttl_seconds
        self._now = now

    def read(self, conversation: str, caller: Caller) -> Known:
        """The session's transcript; empty when there is none usable (see the module docstring).
        Raises UpstreamError when DynamoDB fails (the caller reads that as empty too)."""
        with call("dynamodb"):
            response = self._client.get_item(
                TableName=self._transcripts_table, Key={KEY: {"S": conversation}}, ConsistentRead=True
            )
        item = response.get("Item")
        return self._parse(item, caller) if isinstance(item, dict) else Known.empty()

    def write(self, conversation: str, caller: Caller, known: Known, turns: Sequence[tuple[str, str, str]]) -> bool:
        """The session's transcript after a delivered turn: ``turns`` as (role, text sent, text as
        screened). False when not written: too large, or a concurrent turn wrote first. Raises
        UpstreamError when DynamoDB fails."""
        same: set[str] = set()
        masked: dict[str, str] = {}
        size = 0
        digests = known.chain([(role, sent) for role, sent, _ in turns])
        for (_, sent, screened), digest in zip(turns, digests, strict=True):
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
            "owner": {"S": known.owner(caller)},
            "guardrail": {"S": self._guardrail},
            "salt": {"B": known.salt},
            "version": {"N": str(max(known.version, 0) + 1)},  # a malformed (negative) version restarts at 1
            TTL_ATTRIBUTE: {"N": str(int(self._now().timestamp()) + self._ttl_seconds)},
        }
        if same:
            item["same"] = {"SS": sorted(same)}
        if masked:
            item["masked"] = {"M": {digest: {"S": text} for digest, text in masked.items()}}
        try:
            with call("dynamodb"):
                self._client.put_item(
                    TableName=self._transcripts_table,
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
        would otherwise refuse every write until DynamoDB deletes it). Its types are DynamoDB's:
        a string set's members, a map's keys and an S value are strings."""
        try:
            salt, version = item["salt"]["B"], int(item["version"]["N"])
            if not isinstance(salt, bytes) or not hmac.compare_digest(
                item["owner"]["S"], Known(salt=salt).owner(caller)
            ):
                return Known.empty()  # another caller's: neither read nor written over
        except (KeyError, TypeError, ValueError, AttributeError):
            return Known.empty()
        stale = Known(salt=os.urandom(SALT_BYTES), version=version)
        try:
            if item["guardrail"]["S"] != self._guardrail or int(item[TTL_ATTRIBUTE]["N"]) <= self._now().timestamp():
                return stale
            entries: dict[str, str | None] = dict.fromkeys(item.get("same", {"SS": []})["SS"])
            for digest, value in item.get("masked", {"M": {}})["M"].items():
                entries[digest] = value["S"]
        except (KeyError, TypeError, ValueError, AttributeError):
            return stale
        if len(salt) != SALT_BYTES or version < 1:
            return stale
        return Known(salt=salt, version=version, entries=entries)


@dataclass(frozen=True)
class Draft:
    """A turn's transcript, written once its answer is delivered: the turn's texts as (role, text
    sent, text as screened). The answer is not among them: it joins the transcript on the next turn,
    once the input guardrail has checked it resent."""

    store: Transcripts
    conversation: str
    caller: Caller
    known: Known
    turns: tuple[tuple[str, str, str], ...]

    def save(self) -> bool:
        """Write it (False: not written, see Transcripts.write; UpstreamError: DynamoDB failed)."""
        return self.store.write(self.conversation, self.caller, self.known, self.turns)
