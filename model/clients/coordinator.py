"""The consumer's side of the group coordinator: discovery, ``commitSync``, committed offsets.

As the Java client's ``ConsumerCoordinator`` / ``AbstractCoordinator`` do it:

* The coordinator is discovered with ``FindCoordinator``, sent to any broker that accepts
  a connection (the least loaded node); it names the leader of the group's
  ``__consumer_offsets`` partition, or answers ``COORDINATOR_NOT_AVAILABLE``.
* ``commitSync`` (``commitOffsetsSync``) sends ``OffsetCommit`` to the coordinator and
  retries every retriable failure (``COORDINATOR_NOT_AVAILABLE``, ``NOT_COORDINATOR``,
  ``REQUEST_TIMED_OUT``, a lost connection or a request timeout, each of which also marks
  the coordinator unknown so it is discovered again) after ``retry.backoff.ms``, until
  ``default.api.timeout.ms`` (60000) runs out; then it throws ``TimeoutException``.
* The committed offsets a starting consumer resumes from are fetched with
  ``OffsetFetch`` from the coordinator, retried the same way.

* A group member (``subscribe``) commits with its generation and member id, and only
  while it has a stable generation (``sendOffsetCommitRequest``): without one the commit
  fails locally (RebalanceInProgressException during a rebalance, CommitFailedException
  otherwise).  UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION reset the generation and fail
  the commit (CommitFailedException); REBALANCE_IN_PROGRESS requests a rejoin and fails
  it (RebalanceInProgressException).  A refused commit is not retried.
* ``commitAsync`` (what auto-commit uses) sends one OffsetCommit and is not retried; its
  outcome is reported to the caller.

Requests time out after ``request.timeout.ms``, which closes the connection.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from model import messages as m
from model.context import Context

RETRIABLE = frozenset({m.COORDINATOR_NOT_AVAILABLE, m.NOT_COORDINATOR, m.REQUEST_TIMED_OUT,
                       m.NETWORK_EXCEPTION})
# Answers after which the offsets may have been written (appended, not yet replicated, or
# the answer lost): a commit that then fails for good is indeterminate, not failed.
MAYBE_WRITTEN = frozenset({m.COORDINATOR_NOT_AVAILABLE, m.REQUEST_TIMED_OUT,
                           m.NETWORK_EXCEPTION})
# The group refused the commit: it was not written.
GROUP_REFUSALS = frozenset({m.UNKNOWN_MEMBER_ID, m.ILLEGAL_GENERATION,
                            m.REBALANCE_IN_PROGRESS, m.STALE_MEMBER_EPOCH})
COMMIT_FAILED = "CommitFailedException"
REBALANCING = "RebalanceInProgressException"


@attrs.define(slots=True)
class Request:
    corr: int
    broker: str
    sent_at: int
    # How long the client waits for the answer, if not request.timeout.ms (a JoinGroup
    # waits for the whole rebalance).
    timeout_ms: int | None = None

    def timed_out(self, now: int, request_timeout_ms: int) -> bool:
        timeout = request_timeout_ms if self.timeout_ms is None else self.timeout_ms
        return now - self.sent_at >= timeout


@attrs.define(slots=True)
class CommitSync:
    """One ``commitSync`` call in progress."""

    offsets: dict[int, int]
    deadline: int
    request: Request | None = None
    retry_at: int = 0
    maybe_applied: bool = False     # some attempt reached a broker
    last_error: str | None = None
    maybe_written: bool = False     # some attempt may have been written (for refusals)


@attrs.define(slots=True)
class CommitAsync:
    """One ``commitAsync`` in flight (not retried)."""

    offsets: dict[int, int]
    request: Request
    done: Callable[[dict[int, int], str | None], None]


Done = Callable[[dict[int, int], str, str | None], None]


class ConsumerCoordinator:
    def __init__(self, name: str, ctx: Context, brokers: list[str], on_commit_done: Done,
                 on_committed: Callable[[dict[int, int]], None]) -> None:
        self.name = name
        self.ctx = ctx
        self.brokers = brokers
        self.group = ctx.config.consumer.group_id
        self.on_commit_done = on_commit_done
        self.on_committed = on_committed
        self.coordinator: str | None = None
        self.finding: Request | None = None
        self.find_retry_at = 0
        self.commit: CommitSync | None = None
        self.offsets_fetch: Request | None = None
        self.fetch_retry_at = 0
        self.committed_known = False
        self.asyncs: list[CommitAsync] = []
        # commitAsync calls waiting for the coordinator to be found (offsets, callback).
        self.waiting_asyncs: list[tuple[dict[int, int],
                                        Callable[[dict[int, int], str | None], None]]] = []
        # The KIP-848 consumer keeps a waiting commit until a coordinator is found; the
        # classic one fails it when a lookup fails (set by the consumer).
        self.keeps_waiting_commits = False
        # Set by a subscribing consumer: its group membership (generation, member id).
        self.membership: Any = None
        # KIP-447 (2.5.0): every consumer asks for stable offsets (OffsetFetch v7
        # requireStable, always true in ConsumerCoordinator.sendOffsetFetchRequest), for
        # the partitions it has no position for.
        self.require_stable = ctx.config.kafka.behaviours.stable_offset_fetch
        self.initializing: Callable[[], tuple[int, ...]] = tuple
        # Whether the committed offsets of initializing partitions may be fetched now (the
        # KIP-848 consumer: only once the application has polled since the assignment).
        self.positions_wanted: Callable[[], bool] = lambda: True

    # -- discovery ---------------------------------------------------------------------

    def coordinator_ready(self) -> bool:
        """``ensureCoordinatorReady``, one non-blocking step of it."""
        if self.coordinator is not None:
            if self.ctx.network.accepts(self.name, self.coordinator):
                return True
            self.mark_unknown()      # found, but the connection fails
        if self.finding is None and self.ctx.now >= self.find_retry_at:
            node = next((b for b in self.brokers if self.ctx.network.accepts(self.name, b)), None)
            if node is not None:
                corr = self.ctx.next_corr()
                self.ctx.send(self.name, node, m.FindCoordinatorRequest(corr, self.group))
                self.finding = Request(corr, node, self.ctx.now)
        return False

    def mark_unknown(self) -> None:
        self.coordinator = None

    def _backoff(self) -> int:
        return self.ctx.now + self.ctx.config.producer.retry_backoff_ms

    def on_find_coordinator(self, resp: m.FindCoordinatorResponse) -> None:
        if self.finding is None or self.finding.corr != resp.corr:
            return
        self.finding = None
        if resp.error is None:
            self.coordinator = resp.coordinator
        else:
            self.find_retry_at = self._backoff()
            self._lookup_failed(resp.error)
        self.advance()

    def _lookup_failed(self, error: str) -> None:
        """``commitOffsetsAsync``'s lookup listener, ``onFailure``: every commit waiting
        for the coordinator fails retriably (classic only; see ``keeps_waiting_commits``)."""
        if self.keeps_waiting_commits:
            return
        waiting, self.waiting_asyncs = self.waiting_asyncs, []
        for offsets, done in waiting:
            done(offsets, error if error in RETRIABLE else m.COORDINATOR_NOT_AVAILABLE)

    def async_commit_pending(self) -> bool:
        """A commitAsync waiting for the coordinator or for its answer."""
        return bool(self.asyncs or self.waiting_asyncs)

    # -- commitSync --------------------------------------------------------------------

    def commit_sync(self, offsets: dict[int, int]) -> None:
        timeout = self.ctx.config.consumer.default_api_timeout_ms
        self.commit = CommitSync(offsets, self.ctx.now + timeout)
        if not offsets:
            # Nothing to commit completes locally, with no request and no membership
            # check (ConsumerCoordinator.commitOffsetsSync; CommitRequestManager in the
            # KIP-848 consumer): a member that owns nothing commits successfully.
            self._finish_commit("ok", None)
            return
        self.advance()

    def _commit_request(self, corr: int, offsets: dict[int, int]) -> m.OffsetCommitRequest:
        membership = self.membership
        if membership is None:     # assign: a standalone commit
            return m.OffsetCommitRequest(corr, self.group, tuple(sorted(offsets.items())))
        generation, member_id, instance_id = membership.commit_identity()
        return m.OffsetCommitRequest(corr, self.group, tuple(sorted(offsets.items())),
                                     generation, member_id, instance_id)

    def _local_refusal(self) -> str | None:
        return None if self.membership is None else self.membership.commit_refusal()

    def _send_commit(self) -> None:
        commit = self.commit
        assert commit is not None and self.coordinator is not None
        refusal = self._local_refusal()
        if refusal is not None:
            self._finish_commit("info" if commit.maybe_written else "fail", refusal)
            return
        corr = self.ctx.next_corr()
        self.ctx.send(self.name, self.coordinator, self._commit_request(corr, commit.offsets))
        commit.request = Request(corr, self.coordinator, self.ctx.now)
        commit.maybe_applied = True

    def _group_refusal(self, error: str) -> str:
        """What a group's refusal does to the member, and the exception commitSync
        throws."""
        if self.membership is None:
            return COMMIT_FAILED
        return self.membership.on_commit_refused(error)

    # -- commitAsync -------------------------------------------------------------------

    def commit_async(self, offsets: dict[int, int],
                     done: Callable[[dict[int, int], str | None], None]) -> None:
        """One OffsetCommit; ``done`` gets None or the error.  Nothing to commit succeeds
        locally (``sendOffsetCommitRequest``: ``voidSuccess``).  A coordinator that is not
        known yet is looked up and the commit waits for it, with the offsets it was given:
        ``ConsumerCoordinator.commitOffsetsAsync`` sends it when the lookup succeeds and
        fails it (retriably) when the lookup fails; the KIP-848 consumer's
        ``CommitRequestManager`` keeps it queued, with no deadline, until a coordinator is
        found."""
        if not offsets:
            done(offsets, None)
            return
        if not self.coordinator_ready():
            self.waiting_asyncs.append((offsets, done))
            return
        self._send_async(offsets, done)

    def _send_async(self, offsets: dict[int, int],
                    done: Callable[[dict[int, int], str | None], None]) -> None:
        """``doCommitOffsetsAsync`` / the queued request sent: the membership is checked
        now, as the request is built."""
        refusal = self._local_refusal()
        if refusal is not None:
            done(offsets, refusal)
            return
        assert self.coordinator is not None
        corr = self.ctx.next_corr()
        self.ctx.send(self.name, self.coordinator, self._commit_request(corr, offsets))
        self.asyncs.append(CommitAsync(offsets, Request(corr, self.coordinator, self.ctx.now),
                                       done))

    def _async_answered(self, corr: int, error: str | None) -> bool:
        for pending in self.asyncs:
            if pending.request.corr == corr:
                self.asyncs.remove(pending)
                if error in GROUP_REFUSALS:
                    error = self._group_refusal(error)  # type: ignore[arg-type]
                elif error in RETRIABLE:
                    self.mark_unknown()
                pending.done(pending.offsets, error)
                return True
        return False

    def on_commit_response(self, resp: m.OffsetCommitResponse) -> None:
        if self._async_answered(resp.corr, resp.error):
            return
        commit = self.commit
        if commit is None or commit.request is None or commit.request.corr != resp.corr:
            return
        commit.request = None
        if resp.error is None:
            self._finish_commit("ok", None)
            return
        self._commit_failed(resp.error)

    def _commit_failed(self, error: str) -> None:
        commit = self.commit
        assert commit is not None
        commit.last_error = error
        if error in MAYBE_WRITTEN:
            commit.maybe_written = True
        if error in GROUP_REFUSALS:
            refusal = self._group_refusal(error)
            self._finish_commit("info" if commit.maybe_written else "fail",
                                f"{refusal} ({error})")
            return
        if error not in RETRIABLE:
            self._finish_commit("info" if commit.maybe_applied else "fail", error)
            return
        self.mark_unknown()
        commit.retry_at = self._backoff()

    def _finish_commit(self, outcome: str, error: str | None) -> None:
        commit = self.commit
        assert commit is not None
        self.commit = None
        self.on_commit_done(commit.offsets, outcome, error)

    # -- committed offsets at start-up ---------------------------------------------------

    def on_offset_fetch(self, resp: m.OffsetFetchResponse) -> None:
        if self.offsets_fetch is None or self.offsets_fetch.corr != resp.corr:
            return
        self.offsets_fetch = None
        if resp.error is not None:
            # Retried: a coordinator error after discovering it again; a stale epoch
            # (KIP-848) with the member's latest one.
            if resp.error not in (m.STALE_MEMBER_EPOCH, m.UNKNOWN_MEMBER_ID):
                self.mark_unknown()
            self.fetch_retry_at = self._backoff()
            return
        if resp.unstable:
            # UnstableOffsetCommitException: retriable, the whole fetch is tried again.
            self.ctx.event(self.name, "offsets-unstable", partitions=list(resp.unstable))
            self.fetch_retry_at = self._backoff()
            return
        self.committed_known = True
        self.on_committed(dict(resp.offsets))

    # -- driving -----------------------------------------------------------------------

    def advance(self) -> None:
        """Take whatever next step the pending work allows (called on every event)."""
        if self.waiting_asyncs and self.coordinator_ready():
            waiting, self.waiting_asyncs = self.waiting_asyncs, []
            for offsets, done in waiting:
                self._send_async(offsets, done)
        commit = self.commit
        if commit is not None:
            if self.ctx.now >= commit.deadline:
                self._finish_commit("info" if commit.maybe_applied else "fail",
                                    "TimeoutException")
            elif commit.request is None and self.ctx.now >= commit.retry_at \
                    and self.coordinator_ready():
                self._send_commit()
        if not self.committed_known and not self.initializing():
            # fetchCommittedOffsets of no partition: an empty answer, no request.
            self.committed_known = True
            self.on_committed({})
        if (not self.committed_known and self.offsets_fetch is None
                and self.ctx.now >= self.fetch_retry_at and self.positions_wanted()
                and self.coordinator_ready()):
            assert self.coordinator is not None
            corr = self.ctx.next_corr()
            member_id, epoch = (self.membership.fetch_identity()
                                if self.membership is not None else ("", -1))
            self.ctx.send(self.name, self.coordinator, m.OffsetFetchRequest(
                corr, self.group, self.require_stable, self.initializing(), member_id, epoch))
            self.offsets_fetch = Request(corr, self.coordinator, self.ctx.now)

    def timed_out_brokers(self) -> set[str]:
        """Brokers with a request older than ``request.timeout.ms`` (their connection is
        closed by the caller)."""
        timeout = self.ctx.config.producer.request_timeout_ms
        requests = [self.finding, self.offsets_fetch, self.commit.request if self.commit else None,
                    *(a.request for a in self.asyncs)]
        brokers = {r.broker for r in requests
                   if r is not None and r.timed_out(self.ctx.now, timeout)}
        if self.membership is not None:
            brokers |= self.membership.timed_out(self.ctx.now, timeout)
        return brokers

    def on_disconnect(self, peer: str) -> None:
        if self.finding is not None and self.finding.broker == peer:
            self.finding = None
            self.find_retry_at = self._backoff()
            self._lookup_failed(m.NETWORK_EXCEPTION)
        if self.offsets_fetch is not None and self.offsets_fetch.broker == peer:
            self.offsets_fetch = None
            self.mark_unknown()
            self.fetch_retry_at = self._backoff()
        commit = self.commit
        if commit is not None and commit.request is not None and commit.request.broker == peer:
            commit.request = None
            self._commit_failed(m.NETWORK_EXCEPTION)
        for pending in [a for a in self.asyncs if a.request.broker == peer]:
            self._async_answered(pending.request.corr, m.NETWORK_EXCEPTION)
        if self.membership is not None:
            self.membership.on_disconnect(peer)
        if self.coordinator == peer:
            self.mark_unknown()

    def abandon(self) -> dict[int, int] | None:
        """The process died: the offsets of a commitSync in progress, if any (commits
        waiting for the coordinator die unsent)."""
        self.waiting_asyncs = []
        return self.commit.offsets if self.commit is not None else None
