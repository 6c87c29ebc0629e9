"""ReplicaLog: the leader-epoch cache and KIP-101/279 truncation arithmetic."""

from hypothesis import given, settings
from hypothesis import strategies as st

from model.broker.log import UNDEFINED_EPOCH, UNDEFINED_OFFSET, Record, ReplicaLog

UNDEFINED = (UNDEFINED_EPOCH, UNDEFINED_OFFSET)


def record(offset: int, epoch: int) -> Record:
    # A record is determined by (offset, epoch): the same leader wrote both copies.
    return Record(offset, epoch, f"k{offset % 3}", offset * 1000 + epoch, "p0")


def log_of(*epochs: int) -> ReplicaLog:
    """A log whose record at offset i was written in leader epoch ``epochs[i]``."""
    log = ReplicaLog()
    for offset, epoch in enumerate(epochs):
        log.append_replicated(record(offset, epoch))
    return log


def follow_leader(follower: ReplicaLog, leader: ReplicaLog, max_rounds: int = 50) -> int:
    """Fetch-time truncation rounds until the leader reports no divergence."""
    for rounds in range(max_rounds):
        diverging = leader.diverging_epoch(follower.leo, follower.latest_epoch())
        if diverging is None:
            return rounds
        follower.truncate_to(follower.truncation_offset(diverging))
    raise AssertionError(f"no convergence in {max_rounds} rounds")


def follower_after(follower: ReplicaLog, leader: ReplicaLog) -> ReplicaLog:
    follow_leader(follower, leader)
    return follower


# -- the epoch cache ---------------------------------------------------------------------


def test_epoch_cache_records_the_start_offset_of_each_epoch():
    log = log_of(0, 0, 2, 2, 2, 5)
    assert log.epochs == [(0, 0), (2, 2), (5, 5)]
    assert log.leo == 6
    assert log.latest_epoch() == 5


def test_append_assigns_epochs_and_offsets():
    log = ReplicaLog()
    first = log.append(3, "k", 10, "p0")
    second = log.append(3, "k", 11, "p0")
    third = log.append(4, "k", 12, "p0")
    assert (first.offset, second.offset, third.offset) == (0, 1, 2)
    assert log.epochs == [(3, 0), (4, 2)]


def test_epoch_start_is_kept_for_an_epoch_without_records():
    # A new leader assigns its epoch at the log end before it appends anything.
    log = log_of(0, 0)
    log.assign_epoch_start(4, log.leo)
    assert log.epochs == [(0, 0), (4, 2)]
    assert log.end_offset_for_epoch(4) == (4, 2)
    assert log.end_offset_for_epoch(3) == (0, 2)


def test_the_same_epoch_at_a_later_offset_does_not_move_the_cache():
    log = log_of(0, 0, 2, 2)
    log.assign_epoch_start(2, 4)
    log.append_replicated(record(4, 2))
    assert log.epochs == [(0, 0), (2, 2)]


def test_latest_epoch_is_the_caches_not_the_last_records():
    """A follower's lastFetchedEpoch is ``log.latestEpoch``: an epoch assigned at the log
    end by a leader that appended nothing counts until truncation removes it."""
    log = log_of(0, 1, 1)
    assert log.latest_epoch() == 1
    log.assign_epoch_start(3, 3)
    assert log.latest_epoch() == 3
    assert ReplicaLog().latest_epoch() == UNDEFINED_EPOCH


# -- OffsetsForLeaderEpoch (KIP-279) -------------------------------------------------------


def test_end_offset_for_epoch_held_epochs():
    log = log_of(0, 0, 2, 2, 2, 5)
    assert log.end_offset_for_epoch(0) == (0, 2)  # ends where epoch 2 starts
    assert log.end_offset_for_epoch(2) == (2, 5)
    assert log.end_offset_for_epoch(5) == (5, 6)  # the latest epoch ends at the LEO


def test_end_offset_for_epoch_answers_largest_epoch_not_above_the_one_asked():
    log = log_of(0, 0, 2, 2, 2, 5)
    assert log.end_offset_for_epoch(1) == (0, 2)
    assert log.end_offset_for_epoch(3) == (2, 5)
    assert log.end_offset_for_epoch(4) == (2, 5)


def test_end_offset_for_epoch_latest_epoch_follows_the_log_end():
    log = log_of(0, 1)
    assert log.end_offset_for_epoch(1) == (1, 2)
    log.append_replicated(record(2, 1))
    assert log.end_offset_for_epoch(1) == (1, 3)


def test_end_offset_for_epoch_unknown():
    assert ReplicaLog().end_offset_for_epoch(0) == UNDEFINED
    assert ReplicaLog().end_offset_for_epoch(7) == UNDEFINED
    assert log_of(0, 0, 1).end_offset_for_epoch(UNDEFINED_EPOCH) == UNDEFINED


# -- fetch validation: the leader's diverging epoch ----------------------------------------


def test_follower_with_a_suffix_from_an_epoch_the_leader_never_had():
    leader = log_of(0, 0, 2, 2)
    follower = log_of(0, 0, 1, 1, 1)
    # Leader has no epoch 1: it answers with epoch 0, which ends at offset 2.
    assert leader.diverging_epoch(follower.leo, 1) == (0, 2)
    assert follower.truncation_offset((0, 2)) == 2
    assert follower_after(follower, leader).records == leader.records[:2]


def test_follower_with_a_longer_run_of_a_shared_epoch():
    leader = log_of(0, 0, 0, 1)
    follower = log_of(0, 0, 0, 0, 0)
    assert leader.diverging_epoch(5, 0) == (0, 3)
    assert follower.truncation_offset((0, 3)) == 3


def test_follower_that_is_simply_behind_does_not_diverge():
    leader = log_of(0, 0, 2, 2)
    assert leader.diverging_epoch(3, 2) is None
    assert leader.diverging_epoch(2, 0) is None
    assert leader.diverging_epoch(4, 2) is None  # caught up
    assert leader.diverging_epoch(0, UNDEFINED_EPOCH) is None  # empty follower


def test_truncation_when_the_leader_knows_no_older_epoch():
    follower = log_of(0, 0)
    assert follower.truncation_offset(UNDEFINED) == 0


def test_truncation_never_passes_the_follower_log_end():
    follower = log_of(0, 0, 1)
    # The leader's epoch 1 ends further out than the follower's log.
    assert follower.truncation_offset((1, 9)) == 3
    assert follower.truncation_offset((0, 9)) == 2


def test_truncation_needs_several_rounds():
    # Follower holds epochs 1 and 3 that the leader (epochs 0, 2, 4) never had.
    leader = log_of(0, 0, 2, 4)
    follower = log_of(0, 0, 1, 3, 3)
    assert leader.diverging_epoch(5, 3) == (2, 3)
    assert follower.truncation_offset((2, 3)) == 3
    follower.truncate_to(3)
    assert leader.diverging_epoch(3, 1) == (0, 2)
    assert follower.truncation_offset((0, 2)) == 2
    follower.truncate_to(2)
    assert leader.diverging_epoch(2, 0) is None
    assert follower.records == leader.records[:2]


# -- truncate_to ---------------------------------------------------------------------------


def test_truncate_to_drops_records_epochs_and_clamps_hw():
    log = log_of(0, 0, 2, 2, 5, 5)
    log.hw = 5
    log.flushed = 6
    assert log.truncate_to(2) == 4
    assert log.leo == 2
    assert [r.offset for r in log.records] == [0, 1]
    # The epoch starting exactly at the cut goes too (truncateFromEnd).
    assert log.epochs == [(0, 0)]
    assert log.hw == 2
    assert log.flushed == 2
    # Kafka's endOffsetFor: an epoch newer than every cached one has no answer.
    assert log.end_offset_for_epoch(5) == (-1, -1)


def test_truncate_to_keeps_an_epoch_starting_below_the_cut():
    log = log_of(0, 0, 2, 2, 2)
    log.hw = 1
    assert log.truncate_to(3) == 2
    assert log.epochs == [(0, 0), (2, 2)]
    assert log.hw == 1  # already below the cut
    assert log.end_offset_for_epoch(2) == (2, 3)


def test_truncate_to_at_or_past_the_end_does_nothing():
    log = log_of(0, 1)
    log.hw = 2
    assert log.truncate_to(2) == 0
    assert log.truncate_to(7) == 0
    assert (log.leo, log.hw, log.epochs) == (2, 2, [(0, 0), (1, 1)])


def test_truncate_to_negative_empties_the_log():
    log = log_of(0, 1)
    assert log.truncate_to(-1) == 2
    assert (log.leo, log.epochs, log.hw) == (0, [], 0)


# -- property: repeated fetch-time truncation converges ------------------------------------


@st.composite
def replica_histories(draw):
    """Logs of three replicas after a random series of leader elections.

    Each election bumps the epoch; the new leader appends records in that epoch and the
    others copy some prefix of its log after cutting to their common prefix (an oracle),
    so every pair of logs obeys Kafka's log matching property.  Returns (leader, follower)
    where the leader has just been elected with the newest epoch.
    """
    logs = [ReplicaLog() for _ in range(3)]
    epoch = -1
    for _ in range(draw(st.integers(1, 7))):
        epoch += draw(st.integers(1, 2))
        leader = logs[draw(st.integers(0, 2))]
        leader.assign_epoch_start(epoch, leader.leo)
        for _ in range(draw(st.integers(0, 4))):
            leader.append_replicated(record(leader.leo, epoch))
        for log in logs:
            if log is leader or not draw(st.booleans()):
                continue
            common = common_prefix(log, leader)
            log.truncate_to(common)
            for offset in range(common, draw(st.integers(common, leader.leo))):
                log.append_replicated(leader.records[offset])
    leader_index = draw(st.integers(0, 2))
    follower_index = draw(st.integers(0, 2).filter(lambda i: i != leader_index))
    leader = logs[leader_index]
    leader.assign_epoch_start(epoch + 1, leader.leo)
    return leader, logs[follower_index]


def common_prefix(a: ReplicaLog, b: ReplicaLog) -> int:
    n = 0
    while n < min(a.leo, b.leo) and a.records[n] == b.records[n]:
        n += 1
    return n


@settings(max_examples=300, deadline=None)
@given(replica_histories())
def test_truncation_rounds_converge_to_a_prefix_of_the_leader_log(logs):
    leader, follower = logs
    leader_before = list(leader.records)
    follow_leader(follower, leader, max_rounds=len(follower.epochs) + 2)
    assert follower.records == leader.records[:follower.leo]
    assert leader.records == leader_before
    assert [e for e, _ in follower.epochs] == sorted({e for e, _ in follower.epochs})
    assert all(start <= follower.leo for _, start in follower.epochs)


def test_replicating_an_older_epoch_replaces_a_stale_empty_epoch_entry():
    log = log_of(0, 0)
    log.assign_epoch_start(1, 2)          # led epoch 1 from offset 2, appended nothing
    log.append_replicated(record(2, 0))   # then copied the next leader's epoch-0 record
    assert (1, 2) not in log.epochs
    assert log.end_offset_for_epoch(0) == (0, 3)


def test_truncate_to_the_log_end_still_drops_epochs_starting_there():
    log = log_of(0, 0)
    log.assign_epoch_start(4, 2)
    assert log.truncate_to(2) == 0
    assert log.epochs == [(0, 0)]


def test_leader_with_a_stale_entry_does_not_make_a_follower_truncate_a_shared_record():
    leader = log_of(0, 0)
    leader.assign_epoch_start(1, 2)
    leader.append_replicated(record(2, 0))
    leader.assign_epoch_start(2, 3)
    follower = log_of(0, 0, 0)            # identical to the leader's log
    follow_leader(follower, leader)
    assert follower.leo == 3


@settings(max_examples=300, deadline=None)
@given(replica_histories())
def test_truncation_rounds_converge_to_exactly_the_common_prefix(logs):
    leader, follower = logs
    expected = common_prefix(follower, leader)
    follow_leader(follower, leader, max_rounds=len(follower.epochs) + 2)
    assert follower.leo == expected
