"""A restarted broker's registration lifecycle, as KRaft runs it.

ClusterControlManager.registerBroker refuses a new incarnation while the old one's
session is valid; BrokerHeartbeatManager unfences a broker only once it has replayed the
metadata log up to its own registration record; BrokerServer.startup publishes metadata
(takes partition roles) only after that catch-up and opens its listeners only once
unfenced.  A restarted broker therefore never acts on metadata its restart made stale.
"""

from __future__ import annotations

from model import actions as a
from tests.scenario import Scenario


def registrations(s: Scenario, broker: str) -> list[dict]:
    return [e.value for e in s.internal("register") if e.value["broker"] == broker]


def test_a_restarted_broker_cannot_lead_an_epoch_the_controller_has_superseded() -> None:
    """The review's impossible step: b1 led partition 1 in epoch 0, crashed, restarted,
    and became leader of epoch 0 again although epochs 1 and 2 had been elected (its
    queued metadata still named it)."""
    s = Scenario(acks="1", **{"kafkacheck.partitions": "2"})
    for broker in ("b0", "b1", "b2"):
        s.do(a.Crash(broker))
    for broker in ("b0", "b1", "b2"):
        s.do(a.Restart(broker))
    s.tick(500).flush(6).tick(500).flush(6).tick(10000).flush(6).tick(500).flush(6)
    for e in s.internal("become-leader"):
        if e.step == 0:
            continue
        assert e.value["epoch"] >= 1, f"{e.process} led epoch {e.value['epoch']} again"
    assert all(s.cluster.broker_actors[b].serving for b in ("b0", "b1", "b2"))


def test_registration_is_refused_while_the_old_incarnation_has_a_valid_session() -> None:
    """DUPLICATE_BROKER_REGISTRATION until broker.session.timeout.ms (9000) has passed
    since the old incarnation was last heard from; then the old one is fenced first."""
    s = Scenario(acks="1")
    s.tick(1000)                                    # b2 last heard at 1000
    s.do(a.Crash("b2")).do(a.Restart("b2"))
    s.tick(1000).tick(1000).tick(5000)              # 8000: session still valid
    assert registrations(s, "b2") == []
    assert not s.cluster.controller.is_fenced("b2"), "not yet: the session is valid"
    assert s.replica("b2", 0) is None, "the new incarnation has taken no role"
    s.tick(2100)                                    # 10100 > 1000 + 9000
    fence = [e for e in s.internal("fence") if e.value["broker"] == "b2"]
    (registration,) = registrations(s, "b2")
    assert fence and fence[0].index < s.internal("register")[-1].index
    assert registration["incarnation"] == 1


def test_a_registered_broker_stays_fenced_until_it_has_replayed_its_registration() -> None:
    s = Scenario(acks="1")
    s.do(a.Crash("b2")).tick(10000)                 # fenced by session expiry
    s.do(a.Restart("b2")).tick(100)                 # registers (its fetch is still queued)
    assert registrations(s, "b2")
    s.tick(100).tick(100)
    assert s.cluster.controller.is_fenced("b2"), "unfenced before catching up"
    assert s.replica("b2", 0) is None, "published before catching up"
    assert not s.cluster.broker_actors["b2"].serving
    s.sync_metadata()                               # b2 replays the log past its record
    s.tick(100)                                     # heartbeat: caught up -> publish, unfence
    assert not s.cluster.controller.is_fenced("b2")
    assert s.replica("b2", 0) is not None and s.cluster.broker_actors["b2"].serving


def test_a_broker_not_yet_listening_refuses_clients() -> None:
    """Until it is unfenced the restarted broker's listeners are closed: a producer
    whose metadata still names it does not send to it."""
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    s.do(a.Crash(leader)).do(a.Restart(leader))
    s.send()
    assert not s.cluster.ctx.network.queues.get(("p0", leader)), "sent to a closed listener"


def test_a_restarted_broker_whose_metadata_response_was_lost_still_catches_up() -> None:
    """Brokers pull the metadata log: a response lost with its connection is fetched
    again from the same offset."""
    s = Scenario(acks="1")
    p = s.partition()
    s.do(a.Crash("b2")).tick(10000)
    s.do(a.Restart("b2")).tick(100)
    s.deliver("b2", "ctl")                          # the fetch; the answer is queued...
    s.do(a.Partition(("b2",))).do(a.Heal())         # ...and lost with the connection
    s.tick(100).sync_metadata().tick(100).sync_metadata()
    assert s.cluster.broker_actors["b2"].serving
    s.finish()
    assert "unsettled" not in s.anomalies()
    assert s.replica("b2", p).leader == s.leader(p)


def test_a_broker_never_applies_an_older_partition_state_after_a_newer_one() -> None:
    """The metadata log is applied in order and survives a process kill: after its
    restart a broker's view of each partition is never older than before it."""
    s = Scenario(acks="1")
    p = s.partition()
    s.do(a.Crash("b0")).tick(10000).sync_metadata()          # epoch 1 elsewhere
    seen = s.cluster.broker_actors["b1"].metadata.partitions[p].leader_epoch
    s.do(a.Crash("b1")).do(a.Restart("b1"))
    assert s.cluster.broker_actors["b1"].metadata.partitions[p].leader_epoch == seen
