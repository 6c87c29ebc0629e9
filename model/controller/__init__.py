"""The KRaft controller: metadata log, registrations and sessions, elections."""

from model.controller.controller import Controller

__all__ = ["Controller"]
