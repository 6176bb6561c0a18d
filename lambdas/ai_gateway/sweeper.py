"""The ledger's sweeper: settles what a request left unsettled when its function died.

A function that admits units (the gateway, the jobs' worker, a streaming function) delivers or
releases them before it ends; one that dies first (a timeout, a crash, a lost worker event) leaves
its request ``admitted`` (no output handed over), and its units count against the group's quota
until the window resets; or, a stream whose text had started to leave, ``delivering``. Every few
minutes (EventBridge) this function reads the ledger's pending index for requests admitted longer
ago than the bound and settles each with the ledger's own conditional writes: an ``admitted`` one
is released (status ``admitted`` only), a ``delivering`` one is settled as delivered, so:

- a quota is never exceeded: a release only gives back units a request still holds, once, and
  only those of the admission listed (its admission time): a request released and admitted again
  under its id since then, as a retry is, is live, and a stale listing (runs that overlap) leaves it;
- a delivered output is never released: release needs status ``admitted``, which a request leaves
  before any of its output reaches the caller (a buffered output is handed over only once the
  ledger has it delivered; a stream is marked delivering before its first text), and deliver and
  release race on that condition, whichever writes first winning;
- a slow request that is still alive is never released: the bound is longer than the longest life
  of any function that admits (its timeout, and for a job its start window too: the stack
  computes them, SweeperSettings.lifetimes_seconds) plus a slack for clock skew and index lag.

Each run handles at most page_limit requests; what is left waits for the next run. A record the
index lists with units that are not a positive count (a corrupt or hand-edited record) is never
released: giving back a negative count would charge the group. It is counted failed and logged,
and the sweep goes on with the others.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from ai_gateway import clients
from ai_gateway.jobs_contract import JobMetric, SweeperSettings
from ai_gateway.ledger import PENDING_SHARDS, Ledger
from shared.aws_errors import failure_code
from shared.logs import service_logger
from shared.telemetry import emit_all

logger = service_logger()
FUNCTION_DIMENSION = "Function"
SWEEPER = "LedgerSweeper"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Sweep:
    candidates: int  # admitted before the bound, as the index listed them
    released: int  # released by this run
    failed: int  # unreadable, or whose release raised (left for the next run)
    unlisted: int = 0  # settled, yet still in the index (a hand-edited record): taken out of it
    settled: int = 0  # delivering (a stream whose function died): settled as delivered


def sweep(ledger: Ledger, *, now: dt.datetime, bound_seconds: int, page_limit: int, first_shard: int = 0) -> Sweep:
    """Settle up to ``page_limit`` requests admitted more than ``bound_seconds`` before ``now``,
    the pending index's shards read from ``first_shard`` on (the handler picks it at random: a
    page filled with requests whose release fails on every run would otherwise hide the later
    shards' for good)."""
    cutoff = now - dt.timedelta(seconds=bound_seconds)
    unreadable: list[str] = []
    pending = ledger.pending(
        admitted_before=cutoff, limit=page_limit, unreadable=unreadable.append, first_shard=first_shard
    )
    for problem in unreadable:  # left in the index: named on every run until someone mends it
        logger.error("a pending ledger record is unreadable: not released", extra={"problem": problem})
    released, failed, unlisted, settled = 0, len(unreadable), 0, 0
    for request in pending:
        if type(request.units) is not int or request.units < 1:
            failed += 1
            logger.error("a pending request's units are not a count: not released", extra={"group": request.group})
            continue
        try:
            done = ledger.release(
                request.request_id,
                group=request.group,
                user=request.user,
                output_type=request.output_type,
                units=request.units,
                window=request.window,
                admitted_at=request.admitted_at,  # this admission only, not one made again since
            )
            # Not released: being delivered (its text had left), or settled already. A settled
            # request the index still lists long past the bound would come first in every run's
            # page (oldest first), hiding the dead requests behind it: it is taken out of the
            # index, and said.
            delivered = not done and ledger.settle_delivering(request)
            out = not (done or delivered) and ledger.unlist_settled(request)
        except (ClientError, BotoCoreError) as error:
            failed += 1
            logger.warning("release failed", extra={"group": request.group, "code": failure_code(error)})
            continue
        # Who and what, never the user: request ids are the caller's keys, groups are ours.
        about = {"group": request.group, "output_type": request.output_type, "admitted_at": request.admitted_at}
        if done:
            released += 1
            logger.info("released a dead request's units", extra=about)
        elif delivered:
            settled += 1
            logger.info("settled a dead stream's delivery: its units stay charged", extra=about)
        elif out:
            unlisted += 1
            logger.warning("a settled request was still in the pending index: taken out of it", extra=about)
    return Sweep(
        candidates=len(pending) + len(unreadable),
        released=released,
        failed=failed,
        unlisted=unlisted,
        settled=settled,
    )


@cache
def settings() -> SweeperSettings:
    return SweeperSettings.from_environ()


@cache
def ledger() -> Ledger:
    return Ledger(clients.dynamodb(), settings().ledger_table)


def report(result: Sweep) -> None:
    counts = [
        (JobMetric.SWEPT_RELEASES, result.released),
        (JobMetric.SWEPT_CANDIDATES, result.candidates),
        (JobMetric.SWEPT_SETTLEMENTS, result.settled),
    ]
    emit_all([(name, MetricUnit.Count, float(count)) for name, count in counts], {FUNCTION_DIMENSION: SWEEPER})


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    current = settings()
    result = sweep(
        ledger(),
        now=now(),
        bound_seconds=current.bound_seconds,
        page_limit=current.page_limit,
        first_shard=random.randrange(PENDING_SHARDS),  # noqa: S311 - spreading work, not a secret
    )
    report(result)
    counts = {
        "candidates": result.candidates,
        "released": result.released,
        "settled": result.settled,
        "failed": result.failed,
    }
    logger.info("sweep", extra=counts)
    return counts
