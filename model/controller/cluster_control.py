"""Broker registrations and sessions, as KRaft's ``ClusterControlManager`` and
``BrokerHeartbeatManager`` keep them.

* A broker process registers with a new *incarnation* each time it starts.  The controller
  refuses the registration (``DUPLICATE_BROKER_REGISTRATION``) while the previous
  incarnation still has a valid session (``BrokerHeartbeatManager.hasValidSession``: not
  fenced and heard from within ``broker.session.timeout.ms``); the broker retries.
* An accepted registration is a ``RegisterBrokerRecord`` whose log offset becomes the
  broker epoch; the new incarnation starts *fenced*.
* A fenced broker is unfenced only when a heartbeat says it no longer wants to be fenced
  and its metadata offset has reached its registration record
  (``BrokerHeartbeatManager.calculateNextBrokerState``).
* An unfenced broker not heard from for ``broker.session.timeout.ms`` is fenced
  (``QuorumController.maybeFenceStaleBroker``).

This class only decides; the controller turns decisions into metadata records.
"""

from __future__ import annotations

import attrs

from model import messages as m
from model.metadata import MetadataImage


@attrs.define(slots=True)
class Session:
    """What the controller's heartbeat manager remembers about one registration."""

    broker_epoch: int
    last_contact: int


class ClusterControl:
    def __init__(self, image: MetadataImage, session_timeout_ms: int) -> None:
        self.image = image
        self.session_timeout_ms = session_timeout_ms
        self.sessions: dict[str, Session] = {}

    def has_valid_session(self, broker: str, now: int) -> bool:
        registration = self.image.brokers.get(broker)
        session = self.sessions.get(broker)
        if registration is None or session is None or registration.fenced:
            return False
        return session.last_contact + self.session_timeout_ms >= now

    def expired(self, now: int) -> list[str]:
        """Unfenced brokers whose session ran out by ``now``, in broker order."""
        return [b for b, session in sorted(self.sessions.items())
                if self.image.is_active(b)
                and session.last_contact + self.session_timeout_ms < now]

    def check_registration(self, request: m.BrokerRegistrationRequest, now: int) -> str | None:
        """None if a new incarnation may register now, else the error to answer."""
        existing = self.image.brokers.get(request.broker)
        if (existing is not None and existing.incarnation != request.incarnation
                and self.has_valid_session(request.broker, now)):
            return m.DUPLICATE_BROKER_REGISTRATION
        return None

    def registered(self, broker: str, broker_epoch: int, now: int) -> None:
        self.sessions[broker] = Session(broker_epoch, now)

    def heartbeat(self, request: m.BrokerHeartbeatRequest, now: int
                  ) -> tuple[m.BrokerHeartbeatResponse, bool]:
        """The response, and whether the broker is to be unfenced now."""
        registration = self.image.brokers.get(request.broker)
        if registration is None or registration.broker_epoch != request.broker_epoch:
            return m.BrokerHeartbeatResponse(m.STALE_BROKER_EPOCH), False
        self.sessions[request.broker].last_contact = now
        caught_up = request.metadata_offset > registration.broker_epoch
        unfence = registration.fenced and not request.want_fence and caught_up
        fenced = registration.fenced and not unfence
        return m.BrokerHeartbeatResponse(None, caught_up, fenced), unfence
