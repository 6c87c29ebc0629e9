"""What this machine can do for a real run, each missing piece as one clear sentence."""

from __future__ import annotations

import os
import shutil

from kafkacheck.errors import UsageError

PROCESS_FAULTS = frozenset({"crash", "pause", "client-crash"})
NETWORK_FAULTS = frozenset({"partition"})
ALL_FAULTS = PROCESS_FAULTS | NETWORK_FAULTS


class RealEnvironmentError(UsageError):
    """The machine lacks something a real run needs (exit code 2, one line)."""


def require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RealEnvironmentError(f"`{name}` not found on PATH: {why}")
    return path


def netns_problem(run_id: str) -> str | None:
    """None if namespaces, veths and policy rules can be made here, else why not."""
    if shutil.which("ip") is None:
        return "`ip` (iproute2) not found on PATH"
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, or with CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    from kafkacheck.real.netns import probe

    problem = probe(run_id)
    return None if problem is None else f"cannot create network namespaces: {problem}"


def check_faults(faults: frozenset[str], run_id: str) -> bool:
    """Validate the requested fault families; True if namespaces are to be used.

    Without namespace permission, process faults still work (the nodes then share the
    host's loopback on distinct ports); network faults are refused with the reason and
    the command that runs with process faults only."""
    unknown = faults - ALL_FAULTS
    if unknown:
        raise RealEnvironmentError(
            f"unknown fault kind(s) {', '.join(sorted(unknown))}; choose from "
            f"{', '.join(sorted(ALL_FAULTS))}")
    problem = netns_problem(run_id)
    if problem is None:
        return True
    wanted = faults & NETWORK_FAULTS
    if wanted:
        raise RealEnvironmentError(
            f"{problem}; network faults ({', '.join(sorted(wanted))}) are unavailable: "
            f"run with --faults {','.join(sorted(faults & PROCESS_FAULTS)) or 'crash,pause'} "
            f"for process faults only")
    return False
