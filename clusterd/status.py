"""``clusterd status``: the cluster as this server sees it, as data (``docs/clusterd.md`` lists the fields)."""

from __future__ import annotations

import math
import time
from typing import Any

from .changes import pending
from .core import Core
from .membership import Role
from .primary import PushState
from .sync import SyncState


def status(core: Core, pushes: dict[int, PushState], problems: dict[int, str | None] | None = None) -> dict[str, Any]:
    """``problems``: why this server's link to a peer is not up (:attr:`clusterd.links.PeerLink.problem`)."""
    now = time.monotonic()
    m = core.membership
    role = core.role()
    head = core.head
    primary_up = m.primary is not None and m.primary in m.up
    own = core.own_state()
    if own is SyncState.IN_SYNC and core.live_error:  # the file holds something the daemon could not take in
        own = SyncState.CHANGES_PENDING
    servers = [{
        "id": core.config.id, "address": core.config.address, "role": role.value, "up": True,
        "this": True, "last_heartbeat": 0.0, "generation": head.number, "head": head.id,
        "digest": core.live.digest if core.live else "", "sync": own.value,
        "error": (core.apply_error if own is SyncState.SYNC_FAILED else None) or core.live_error
        or core.faults.text(), "version": core.version,
    }]
    announcer = m.peers.get(m.primary) if m.primary is not None and m.primary != core.config.id else None
    for peer in core.config.peers:
        view = m.peers.get(peer.id)
        up = bool(view and view.up)
        push = pushes.get(peer.id)
        state = SyncState(view.state) if view and view.state in SyncState._value2member_map_ else None
        error = None
        if not up and view is not None and announcer is not None and announcer.up and peer.id not in m.linked \
                and peer.id in m.announced:  # a sparse cluster: not linked here, up as the primary says
            second = peer.id not in announcer.behind
            servers.append({
                "id": peer.id, "address": peer.address, "this": False, "role": "secondary", "up": True,
                "last_heartbeat": None, "generation": announcer.generation if second else 0,
                "head": announcer.head if second else "", "digest": announcer.digest if second else "",
                "sync": (SyncState.IN_SYNC if second else SyncState.CHANGES_PENDING).value, "error": None,
                "trusted": peer.key is not None, "ssh_port": peer.ssh_port, "inbox": "", "via": m.primary,
            })
            continue
        if not up:
            state = SyncState.DISCONNECTED
        elif role is Role.PRIMARY and view is not None:
            behind = view.head != head.id or view.digest != head.digest
            if push is not None and push.running:
                state = SyncState.SYNCING
            elif push is not None and push.error and behind:  # a failure is shown only while it holds
                state, error = SyncState.SYNC_FAILED, push.error
            elif behind:
                state = state if state is not SyncState.IN_SYNC else SyncState.CHANGES_PENDING
        servers.append({
            "id": peer.id, "address": peer.address, "this": False,
            "role": ("primary" if m.primary == peer.id else "secondary") if up else "down",
            "up": up, "last_heartbeat": round(now - view.last, 2) if view and view.last > -math.inf else None,
            "silent_after": round(m.fuse(peer.id), 2) if peer.id in m.linked else None,
            "generation": view.generation if view else 0, "head": view.head if view else "",
            "digest": view.digest if view else "", "sync": (state or SyncState.DISCONNECTED).value,
            "error": error or (problems or {}).get(peer.id),
            "trusted": peer.key is not None, "ssh_port": peer.ssh_port, "inbox": view.inbox if view else "",
            "version": view.version if view else "",
        })
    ready = primary_up and role is not Role.JOINING
    complete = ready and all(s["up"] and s["sync"] == SyncState.IN_SYNC for s in servers)
    return {
        "server": core.config.id, "epoch": m.epoch, "primary": m.primary if primary_up else None,
        "state": "ready" if ready else "not ready", "status": "complete" if complete else "incomplete",
        "generation": {"number": head.number, "epoch": head.epoch, "sha256": head.sha256, "digest": head.digest,
                       "id": head.id, "parents": list(head.parents),
                       "author": head.author if head.id else None, "acknowledged": core.acknowledged()},
        "servers": sorted(servers, key=lambda s: s["id"]),
        "conflicts": [c.as_data() for c in core.conflicts], "events": list(core.events.lines)[-15:],
        "pending": (waiting.as_data() if (waiting := pending(core.history, head.id) if head.id else None) else None),
    }
