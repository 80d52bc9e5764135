"""Rolling software updates: one package, every server, one at a time, as a state the cluster keeps.

A roll-out is a :class:`Plan`, kept by every server in ``state-dir/updates/rollout.json``
and sent to every peer whenever it changes (and every few seconds while it
runs), so that any server can show it, resume it or abort it. The server it
was started on is its coordinator; a ``resume`` or an ``abort`` on another
server starts a new *term* of the plan, and a coordinator that sees a later
term stops (ordering by term, then by change number, as epochs order primary terms).

The steps (``docs/clusterd.md``, "Updating the cluster"):

1. check the package (:mod:`clusterd.package`): sha256, and the signature
   when the cluster file names an ``update-signing-key``;
2. copy it to every server over SFTP (:mod:`clusterd.transfer`), where it is
   checked again on arrival and kept in ``state-dir/updates/packages``;
3. install in the plan's order, secondaries by descending id, the primary
   last, ``parallel`` at a time: the target records that it started this
   roll-out's install *before* it runs ``update-command`` (so a second
   request, from a new coordinator, never runs it twice), runs it detached
   (it may restart the daemon), and writes its exit status and output to
   files a restarted daemon reads;
4. a server is done when its install exited 0 (or its daemon was restarted
   since the install began) and, seen twice a heartbeat interval apart from
   the same daemon process, it reports the package's version and has been in
   sync (or held a generation the primary held since the install ended) (the
   old primary: and has its role back);
5. the first failure stops the roll-out: servers not started are not touched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import time
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Coroutine

import asyncssh

from confmerge import write_atomic

from . import package as packages
from . import transfer
from .core import Core
from .links import LinkDown, PeerLink
from .membership import Role
from .protocol import Install, Installed, PackageArrived, Reply, Rollout, Update, UpdateRequest
from .rest import Rest
from .sync import SyncState

log = logging.getLogger("clusterd")

ACTIVE = ("copying", "installing")
"""Plan states in which a roll-out is under way (``done``, ``failed``, ``aborted`` are final)."""
CALL_TIMEOUT = 10.0
TAIL_LINES = 10
_WRAPPER = ('( sh -c "$CLUSTERD_UPDATE_COMMAND" >"$CLUSTERD_UPDATE_LOG" 2>&1 </dev/null; '
            'echo $? >"$CLUSTERD_UPDATE_STATUS.part"; mv -f "$CLUSTERD_UPDATE_STATUS.part" "$CLUSTERD_UPDATE_STATUS" ) &')
"""Runs the update command in the background, out of the daemon's process (the command may restart the daemon),
and records its exit status in a file once it ends."""


@dataclass(slots=True)
class Step:
    """One server's part of a roll-out."""

    state: str = "pending"
    """pending, installing, done, failed."""
    error: str = ""
    tail: str = ""
    started: float | None = None
    finished: float | None = None

    def as_data(self) -> dict[str, Any]:
        return {"state": self.state, "error": self.error, "tail": self.tail, "started": self.started,
                "finished": self.finished}


@dataclass(slots=True)
class Plan:
    """A roll-out as every server keeps it."""

    id: str
    package: dict[str, Any]
    """The manifest's data: name, version, sha256, size."""
    order: list[int]
    parallel: int
    coordinator: int
    primary: int
    """The primary when it started: updated last, and done only once its role is back."""
    state: str = "copying"
    term: int = 0
    seq: int = 0
    steps: dict[int, Step] = field(default_factory=dict)
    reason: str = ""
    started: float = 0.0
    finished: float | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.term, self.seq)

    @property
    def version(self) -> str:
        return str(self.package["version"])

    @property
    def sha256(self) -> str:
        return str(self.package["sha256"])

    def as_data(self) -> dict[str, Any]:
        return {"id": self.id, "package": self.package, "order": self.order, "parallel": self.parallel,
                "coordinator": self.coordinator, "primary": self.primary, "state": self.state, "term": self.term,
                "seq": self.seq, "steps": {str(i): s.as_data() for i, s in self.steps.items()},
                "reason": self.reason, "started": self.started, "finished": self.finished}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Plan":
        try:
            plan = cls(str(data["id"]), dict(data["package"]), [int(i) for i in data["order"]], int(data["parallel"]),
                       int(data["coordinator"]), int(data["primary"]), str(data["state"]), int(data["term"]),
                       int(data["seq"]), reason=str(data.get("reason", "")), started=float(data.get("started", 0)),
                       finished=data.get("finished"))
            for key, step in dict(data["steps"]).items():
                plan.steps[int(key)] = Step(str(step["state"]), str(step.get("error", "")), str(step.get("tail", "")),
                                            step.get("started"), step.get("finished"))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a roll-out record ({error})") from None
        return plan


def rolling_order(servers: list[int], primary: int) -> list[int]:
    """Secondaries first, highest id first; the primary last."""
    return sorted((i for i in servers if i != primary), reverse=True) + [primary]


class Updates:
    """This server's part in software updates: its version, the packages it keeps, its installs, and coordinating."""

    def __init__(self, core: Core, links: dict[int, PeerLink], spawn: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self.core = core
        self.links = links
        self.spawn = spawn
        self.root = core.config.state_dir / "updates"
        self.store = self.root / "packages"
        self.store.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.instance = uuid.uuid4().hex[:12]
        """This daemon process: a server seen twice with one instance did not restart in between."""
        self.plan = self._load_plan()
        self._saved = (self.plan.id, *self.plan.key) if self.plan else None
        self._install_lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self._accounted: set[str] = set()
        self._rest = Rest()
        """The watch's rest while nothing is under way; recording an install or a roll-out ends it."""

    @property
    def me(self) -> int:
        return self.core.config.id

    # -- on disk ------------------------------------------------------------

    def _load_plan(self) -> Plan | None:
        try:
            return Plan.from_data(json.loads((self.root / "rollout.json").read_text()))
        except (OSError, ValueError) as error:
            if not isinstance(error, FileNotFoundError):
                log.warning("cannot read %s: %s", self.root / "rollout.json", error)
            return None

    def keep(self, plan: Plan) -> bool:
        """Keep ``plan`` if it is later than the one kept here; True if it was."""
        if self._saved is not None and self._saved[0] == plan.id and plan.key <= self._saved[1:]:
            return False
        if self.plan is not None and self.plan.id != plan.id and plan.started < self.plan.started:
            return False
        try:
            write_atomic(self.root / "rollout.json", json.dumps(plan.as_data(), indent=1) + "\n")
        except OSError as error:
            self.core.faults.failed("saving the roll-out", error)
            return False
        self.core.faults.succeeded("saving the roll-out")
        self.plan, self._saved = plan, (plan.id, *plan.key)
        self._rest.wake()
        return True

    def _installs(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / "installs.json").read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _log(self, rollout: str) -> Path:
        return self.root / f"install-{rollout}.log"

    def _status_file(self, rollout: str) -> Path:
        return self.root / f"install-{rollout}.status"

    # -- this server's version ----------------------------------------------

    async def start(self) -> None:
        """At daemon start: this server's version; a roll-out this server coordinates is taken up again."""
        await self.refresh_version()
        self.spawn(self._watch())

    async def refresh_version(self) -> None:
        version = await asyncio.to_thread(self._version)
        if version != self.core.version:
            if self.core.version:
                self.core.events.add(f"this server now runs version {version or '(unknown)'}")
            self.core.version = version
            self.core.nudge()

    def _version(self) -> str:
        """``version-command``'s first line; without one, the version of the last package installed here."""
        config = self.core.config
        if config.version_command:
            try:
                done = subprocess.run(config.version_command, shell=True, capture_output=True, timeout=30,
                                      stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired) as error:
                log.warning("version-command failed: %s", error)
                return ""
            lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
            return lines[0].strip()[:64] if done.returncode == 0 and lines else ""
        installs = self._installs()
        best: tuple[float, str] | None = None
        for rollout, entry in installs.items():
            if self._exit_status(rollout) == 0 and isinstance(entry, dict):
                candidate = (float(entry.get("started", 0)), str(entry.get("version", "")))
                best = max(best, candidate) if best else candidate
        return best[1] if best else ""

    def _exit_status(self, rollout: str) -> int | None:
        try:
            return int(self._status_file(rollout).read_text().strip())
        except (OSError, ValueError):
            return None

    async def _watch(self) -> None:
        """Notice installs that ended (the version may have changed); take up a roll-out this server coordinates."""
        timing = self.core.config.timing
        while self.core.role() is Role.JOINING and not self.core.closed:
            await asyncio.sleep(timing.heartbeat)
        while not self.core.closed:
            await self._take_up()
            installs = self._installs()
            ended = {r for r in installs if r not in self._accounted and self._exit_status(r) is not None}
            if ended:
                self._accounted |= ended
                await self.refresh_version()
            pause = max(timing.heartbeat, 0.2)
            if any(r not in self._accounted for r in installs) or (self.plan is not None and self.plan.state in ACTIVE):
                await asyncio.sleep(pause)
                continue
            await self._rest(pause * 20)  # nothing under way: no file to poll twice a second on every server

    async def _take_up(self) -> None:
        """After a start: coordinate a plan this server kept as its own, under way, once every up peer has answered
        with nothing later (a server that resumed it meanwhile took it over: a later term)."""
        plan = self.plan
        if plan is None or plan.state not in ACTIVE or plan.coordinator != self.me or self.task is not None:
            return
        found = await self._gather(every=True)
        if found is None:
            return  # some up peer did not answer: asked again on the next round
        for later in found:
            self.keep(later)
        plan = self.plan
        if plan is not None and plan.state in ACTIVE and plan.coordinator == self.me and self.task is None:
            self.core.events.add(f"taking up roll-out {plan.id} of version {plan.version} again (this server "
                                 "coordinates it)")
            self._coordinate(plan)

    # -- answering peers ----------------------------------------------------

    async def answer(self, message: UpdateRequest, sender: int) -> Reply:
        if isinstance(message, PackageArrived):
            return await self._arrived(message)
        if isinstance(message, Install):
            return await self._install(message)
        if isinstance(message, Installed):
            return Reply(message.rid, True, body=await self._installed(message.rollout))
        if isinstance(message, Rollout):
            if message.record:
                plan = Plan.from_data(message.record)
                if self.keep(plan) and self.task is not None and plan.coordinator != self.me:
                    self.task.cancel()
                    self.task = None
                    self.core.events.add(f"roll-out {plan.id} is now server {plan.coordinator}'s ({plan.state}); "
                                         "this server stopped coordinating it")
            return Reply(message.rid, True, body={"record": self.plan.as_data() if self.plan else {}})
        return Reply(message.rid, False, f"{message.type} is not an update request")

    async def _arrived(self, message: PackageArrived) -> Reply:
        """A package copied into the inbox: checked here (sha256, signature) before it is kept."""
        rid = message.rid
        if not transfer.is_transfer_name(message.name) or not message.name.startswith("package-") \
                or message.name.endswith(".part"):
            return Reply(rid, False, f"bad package name {message.name!r}")
        path = self.core.history.inbox / message.name
        try:
            try:
                manifest = packages.Manifest.from_data(json.loads(message.manifest))
            except ValueError as error:
                raise packages.PackageError(f"the manifest is not JSON ({error})") from None
            if message.name != transfer.package_name(manifest.sha256):
                raise packages.PackageError("the package's name is not its manifest's sha256")
            await asyncio.to_thread(self._keep_package, path, manifest, message.manifest, message.signature or None)
        except (packages.PackageError, OSError) as error:
            self.core.events.add(f"refused package {message.name[8:20]}: {error}")
            return Reply(rid, False, f"server {self.me}: {error}")
        finally:
            path.unlink(missing_ok=True)
        return Reply(rid, True)

    def _keep_package(self, path: Path, manifest: packages.Manifest, text: str, signature: str | None) -> None:
        """Check the file against the manifest (and this server's signing key) and keep it; blocking."""
        packages.check(path, manifest, text, signature, self.core.config.update_signing_key)
        base = self.store / manifest.sha256
        write_atomic(base.with_suffix(".manifest"), text)
        if signature:
            write_atomic(base.with_suffix(".sig"), signature)
        os.replace(path, base.with_suffix(".pkg"))
        for old in self.store.iterdir():  # one package kept: the latest roll-out's
            if not old.name.startswith(manifest.sha256):
                old.unlink(missing_ok=True)

    def _kept(self, sha256: str) -> tuple[Path, packages.Manifest, str, str | None]:
        base = self.store / sha256
        text = base.with_suffix(".manifest").read_text()
        signature = base.with_suffix(".sig").read_text() if base.with_suffix(".sig").exists() else None
        return base.with_suffix(".pkg"), packages.Manifest.from_data(json.loads(text)), text, signature

    async def _install(self, message: Install) -> Reply:
        """Run ``update-command`` for a kept package, once per roll-out (the record is written before it runs)."""
        async with self._install_lock:
            return await self._install_once(message)

    async def _install_once(self, message: Install) -> Reply:
        rid, config = message.rid, self.core.config
        installs = self._installs()
        if message.rollout in installs:
            return Reply(rid, True, body={"already": True})
        if not config.update_command:
            return Reply(rid, False, f"server {self.me} has no update-command in its cluster file")
        try:
            path, manifest, text, signature = self._kept(message.sha256)
            await asyncio.to_thread(packages.check, path, manifest, text, signature, config.update_signing_key)
        except (OSError, ValueError, packages.PackageError) as error:
            return Reply(rid, False, f"server {self.me} cannot install package {message.sha256[:12]}: {error}")
        installs[message.rollout] = {"sha256": message.sha256, "version": manifest.version, "started": time.time(),
                                     "instance": self.instance}
        try:
            write_atomic(self.root / "installs.json", json.dumps(installs, indent=1) + "\n")
        except OSError as error:
            return Reply(rid, False, f"server {self.me} cannot record the install: {error}")
        self._rest.wake()
        env = dict(os.environ, CLUSTERD_PACKAGE=str(path), CLUSTERD_PACKAGE_VERSION=manifest.version,
                   CLUSTERD_PID=str(os.getpid()), CLUSTERD_SERVER=str(self.me), CLUSTERD_CONFIG=str(config.path),
                   CLUSTERD_UPDATE_COMMAND=config.update_command,
                   CLUSTERD_UPDATE_LOG=str(self._log(message.rollout)),
                   CLUSTERD_UPDATE_STATUS=str(self._status_file(message.rollout)))
        self.core.events.add(f"installing {manifest.name} version {manifest.version} (roll-out {message.rollout})")
        process = await asyncio.create_subprocess_exec("/bin/sh", "-c", _WRAPPER, env=env, cwd=str(self.root),
                                                       stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        await process.wait()  # the background install goes on by itself
        return Reply(rid, True, body={"already": False})

    async def _installed(self, rollout: str) -> dict[str, Any]:
        """``restarted``: this daemon is not the one that started the install (under systemd, the command's own
        ``systemctl restart clusterd`` may end it before its exit status is written)."""
        entry = self._installs().get(rollout)
        restarted = isinstance(entry, dict) and entry.get("instance") != self.instance
        if entry is None:
            state, status = "none", None
        else:
            status = self._exit_status(rollout)
            state = "running" if status is None else "exited"
            if status is not None and rollout not in self._accounted:
                self._accounted.add(rollout)
                await self.refresh_version()
        try:
            tail = "\n".join(self._log(rollout).read_text(errors="replace").splitlines()[-TAIL_LINES:])
        except OSError:
            tail = ""
        return {"state": state, "status": status, "tail": tail, "version": self.core.version,
                "instance": self.instance, "restarted": restarted, "sync": self._own_sync(), "head": self.core.head.id}

    def _own_sync(self) -> bool:
        return self.core.role() is not Role.JOINING and self.core.own_state() is SyncState.IN_SYNC

    # -- the local requests ---------------------------------------------------

    async def local(self, request: Update) -> dict[str, Any]:
        try:
            if request.action == "start":
                return await self._begin(Path(request.path), request.parallel, request.dry_run)
            if request.action == "status":
                return {"ok": True, "update": self.status()}
            if request.action == "resume":
                return await self._resume()
            if request.action == "abort":
                return await self._abort()
        except packages.PackageError as error:
            return {"ok": False, "error": str(error), "package": True}
        return {"ok": False, "error": f"unknown update action {request.action!r}"}

    async def _begin(self, path: Path, parallel: int, dry_run: bool) -> dict[str, Any]:
        core, m = self.core, self.core.membership
        for found in await self._gather():
            self.keep(found)
        if self.plan is not None and self.plan.state in ACTIVE:
            return {"ok": False, "error": f"roll-out {self.plan.id} (version {self.plan.version}) is under way, "
                                          f"coordinated by server {self.plan.coordinator}: see clusterd update status; "
                                          "resume or abort it first"}
        if parallel < 1:
            return {"ok": False, "error": "--parallel must be 1 or more"}
        package = await asyncio.to_thread(packages.load, path)
        await asyncio.to_thread(packages.check_package, package, core.config.update_signing_key)
        primary = m.primary
        if primary is None or primary not in m.up:
            return {"ok": False, "error": "no primary up: the cluster is not ready; a roll-out starts on a ready cluster"}
        servers = [self.me, *(p.id for p in core.config.peers)]
        down = sorted(i for i in servers if i not in m.up)
        if down:
            return {"ok": False, "error": f"server(s) {', '.join(map(str, down))} down: every server must be up to "
                                          "receive the package"}
        order = rolling_order(servers, primary)
        plan = Plan(uuid.uuid4().hex[:12], package.manifest.as_data(), order, parallel, self.me, primary,
                    started=time.time(), steps={i: Step() for i in order})
        if dry_run:
            return {"ok": True, "dry_run": True, "plan": plan.as_data(), "versions": self.versions()}
        await asyncio.to_thread(self._keep_package_copy, package)
        self.keep(plan)
        self.core.events.add(f"roll-out {plan.id}: {package.manifest.name} version {plan.version} to servers "
                             f"{', '.join(map(str, order))} in that order, {parallel} at a time")
        self._coordinate(plan, package)
        return {"ok": True, "plan": plan.as_data()}

    def _keep_package_copy(self, package: packages.Package) -> None:
        """The coordinator keeps its own checked copy: any server may have to resume from its store."""
        temp = self.store / f".{package.manifest.sha256}.copy"
        shutil.copyfile(package.path, temp)
        try:
            self._keep_package(temp, package.manifest, package.manifest_text, package.signature)
        finally:
            temp.unlink(missing_ok=True)

    @typing.overload
    async def _gather(self) -> list[Plan]: ...

    @typing.overload
    async def _gather(self, every: bool) -> list[Plan] | None: ...

    async def _gather(self, every: bool = False) -> list[Plan] | None:
        """The plans the up peers keep (one request each, within :data:`CALL_TIMEOUT`); ``every``: None unless
        every up peer answered."""
        async def ask(peer: int) -> tuple[bool, Plan | None]:
            reply = await self._call(peer, Rollout(rid=0, record={}))
            if reply is None or not reply.ok:
                return False, None
            try:
                return True, Plan.from_data(reply.body["record"]) if reply.body.get("record") else None
            except ValueError:
                return True, None
        answers = await asyncio.gather(*(ask(p) for p in self._up_peers()))
        if every and not all(answered for answered, _ in answers):
            return None
        return sorted((p for _, p in answers if p is not None), key=lambda p: (p.started, p.key))

    async def _under_way(self, what: str) -> Plan | dict[str, Any]:
        """The latest plan any up server keeps, if it is under way; else the refusal to ``what`` it."""
        for found in await self._gather():
            self.keep(found)
        plan = self.plan
        if plan is None or plan.state not in ACTIVE:
            return {"ok": False, "error": f"no roll-out to {what}" + (f" (the last one is {plan.state})" if plan else "")}
        return plan

    async def _resume(self) -> dict[str, Any]:
        plan = await self._under_way("resume")
        if not isinstance(plan, Plan):
            return plan
        if self.task is not None:
            return {"ok": False, "error": f"this server is coordinating roll-out {plan.id} already"}
        if plan.coordinator != self.me and plan.coordinator in self.core.membership.up:
            return {"ok": False, "error": f"server {plan.coordinator} coordinates roll-out {plan.id} and is up; "
                                          "resume it there if it stopped"}
        plan.term, plan.seq, plan.coordinator = plan.term + 1, 0, self.me
        self.keep(plan)
        self.core.events.add(f"roll-out {plan.id} resumed here (term {plan.term})")
        self._coordinate(plan)
        return {"ok": True, "plan": plan.as_data()}

    async def _abort(self) -> dict[str, Any]:
        plan = await self._under_way("abort")
        if not isinstance(plan, Plan):
            return plan
        if self.task is not None:
            self.task.cancel()
            self.task = None
        plan.term, plan.seq, plan.coordinator = plan.term + 1, 0, self.me
        plan.state, plan.reason, plan.finished = "aborted", f"aborted on server {self.me}", time.time()
        self.keep(plan)
        self.core.events.add(f"roll-out {plan.id} aborted; servers not started stay as they are")
        await self._broadcast(plan)
        return {"ok": True, "plan": plan.as_data()}

    # -- coordinating -----------------------------------------------------------

    def _coordinate(self, plan: Plan, package: packages.Package | None = None) -> None:
        self.task = asyncio.create_task(self._run(plan, package))

    def _changed(self, plan: Plan) -> bool:
        """Record a change to the plan this server coordinates; False if a later term took it over."""
        if self.plan is not None and self.plan.id == plan.id and self.plan.term > plan.term:
            return False
        plan.seq += 1
        self.keep(plan)
        self.spawn(self._broadcast(plan))
        return True

    async def _broadcast(self, plan: Plan) -> None:
        data = plan.as_data()
        await asyncio.gather(*(self._call(p, Rollout(rid=0, record=data)) for p in self._up_peers()))

    def _up_peers(self) -> list[int]:
        return [p for p in self.links if p in self.core.membership.up and p != self.me]

    async def _call(self, server: int, message: UpdateRequest, timeout: float = CALL_TIMEOUT) -> Reply | None:
        """A request to ``server`` (this server answers its own); None when it cannot be asked now."""
        if server == self.me:
            return await self.answer(message, self.me)
        link = self.links.get(server)
        if link is None:
            return None
        try:
            return await link.request(message, timeout=timeout)
        except (LinkDown, OSError, asyncssh.Error):  # a channel closing under the request: the peer is restarting
            return None

    async def _run(self, plan: Plan, package: packages.Package | None) -> None:
        try:
            if plan.state == "copying":
                if package is None:  # the coordinator died while copying: copy again from this server's store
                    path, manifest, text, signature = self._kept(plan.sha256)
                    package = packages.Package(path, manifest, signature, text)
                problem = await self._copy(plan, package)
                if problem:
                    self._finish(plan, "failed", problem)
                    return
                plan.state = "installing"
                if not self._changed(plan):
                    return
            await self._install_all(plan)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug must not leave the plan looking under way forever
            log.exception("roll-out %s", plan.id)
            self._finish(plan, "failed", f"the coordinator failed: {type(error).__name__}: {error}")
        finally:
            if self.task is asyncio.current_task():
                self.task = None

    async def _copy(self, plan: Plan, package: packages.Package) -> str | None:
        """The package to every peer (SFTP to its inbox, checked there); the first problem, or None."""
        config = self.core.config
        data = await asyncio.to_thread(package.path.read_bytes)
        name = transfer.package_name(plan.sha256)
        signature = package.signature or ""

        async def one(peer_id: int) -> str | None:
            peer, view = config.peer(peer_id), self.core.membership.peers.get(peer_id)
            if peer is None or view is None or not view.inbox:
                return f"server {peer_id} is not a reachable peer"
            target = transfer.Target(peer.address, peer.ssh_port, config.ssh.user, config.identity, config.known_hosts)
            try:
                await transfer.push(target, view.inbox, name, data, timeout=max(60.0, len(data) / 1e6))
            except transfer.TransferError as error:
                return f"copy to server {peer_id}: {error.reason}"
            reply = await self._call(peer_id, PackageArrived(rid=0, name=name, manifest=package.manifest_text,
                                                             signature=signature), timeout=120)
            if reply is None:
                return f"server {peer_id} did not confirm the package"
            return None if reply.ok else reply.error

        problems = [p for p in await asyncio.gather(*(one(i) for i in plan.order if i != self.me)) if p]
        return problems[0] if problems else None

    async def _install_all(self, plan: Plan) -> None:
        running: dict[int, asyncio.Task[tuple[bool, str, str]]] = {}
        for i, step in plan.steps.items():
            if step.state == "installing":  # started by a coordinator before this one: waited for, never run again
                running[i] = asyncio.create_task(self._install_on(plan, i))
        try:
            while True:
                failed = any(s.state == "failed" for s in plan.steps.values())
                pending = [i for i in plan.order if plan.steps[i].state == "pending"]
                while not failed and pending and len(running) < plan.parallel:
                    server = pending.pop(0)
                    if server == plan.order[-1] and running:
                        break  # the primary goes alone, after every other server
                    for later in await self._gather():  # a server that took the plan over while this one was away
                        self.keep(later)
                    if self.plan is not None and self.plan.id == plan.id and self.plan.term > plan.term:
                        return
                    step = plan.steps[server]
                    step.state, step.started = "installing", time.time()
                    if not self._changed(plan):
                        return
                    running[server] = asyncio.create_task(self._install_on(plan, server))
                if not running:
                    if failed:
                        bad = next(i for i in plan.order if plan.steps[i].state == "failed")
                        self._finish(plan, "failed", f"server {bad}: {plan.steps[bad].error}")
                    else:
                        self._finish(plan, "done", "")
                    return
                done, _ = await asyncio.wait(running.values(), timeout=2.0, return_when=asyncio.FIRST_COMPLETED)
                if self.plan is not None and self.plan.id == plan.id and self.plan.term > plan.term:
                    return
                if not done:
                    self.spawn(self._broadcast(plan))
                for server, task in list(running.items()):
                    if task.done():
                        del running[server]
                        ok, error, tail = task.result()
                        step = plan.steps[server]
                        step.state, step.error, step.tail, step.finished = (
                            "done" if ok else "failed", error, tail, time.time())
                        self.core.events.add(f"roll-out {plan.id}: server {server} "
                                             + ("updated" if ok else f"failed: {error}"))
                        if not self._changed(plan):
                            return
        finally:
            for task in running.values():
                task.cancel()

    async def _install_on(self, plan: Plan, server: int) -> tuple[bool, str, str]:
        """Start the install on ``server`` (once) and wait for it to come back; (ok, error, last lines)."""
        timing = self.core.config.timing
        deadline = time.monotonic() + self.core.config.update_timeout
        while True:
            reply = await self._call(server, Install(rid=0, rollout=plan.id, sha256=plan.sha256))
            if reply is not None:
                if not reply.ok:
                    return False, reply.error, ""
                break
            if time.monotonic() > deadline:
                return False, f"server {server} could not be asked to install (down?)", ""
            await asyncio.sleep(timing.heartbeat)
        seen: str | None = None
        caught: str | None = None
        """The daemon instance seen in sync: in sync, or holding a head the primary held since the install ended
        (operators editing meanwhile keep a server *changes pending* most of the time, caught up all the same)."""
        primary_heads: set[str] = set()
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            reply = await self._call(server, Installed(rid=0, rollout=plan.id))
            body = reply.body if reply is not None and reply.ok else None
            if body is None:
                seen = None
            else:
                last = body
                if body["state"] == "exited" and body["status"] != 0:
                    return False, f"update-command exited with status {body['status']}", str(body["tail"])
                ended = body["state"] == "exited" or (body["state"] == "running" and body["restarted"])
                if ended:
                    primary_heads |= {self._primary_head()} - {""}
                    if body["sync"] or body.get("head") in primary_heads:
                        caught = body["instance"]
                ready = (ended and body["version"] == plan.version and caught == body["instance"]
                         and self._up(server) and (server != plan.primary or self.core.membership.primary == server))
                if ready and seen == body["instance"]:
                    return True, "", str(body["tail"])
                seen = body["instance"] if ready else None
                if ready:
                    await asyncio.sleep(timing.heartbeat)
                    continue
            await asyncio.sleep(timing.heartbeat)
        now = (f"reports version {last.get('version') or '(unknown)'}, install {last.get('state')}"
               + (", not in sync" if last and not last.get("sync") else "")) if last else "does not answer"
        return False, (f"server {server} did not come back with version {plan.version} in sync within "
                       f"{self.core.config.update_timeout:.0f} s (it {now})"), str(last.get("tail", ""))

    def _primary_head(self) -> str:
        m = self.core.membership
        if m.primary == self.me:
            return self.core.head.id
        view = m.peers.get(m.primary) if m.primary is not None else None
        return view.head if view is not None and view.up else ""

    def _up(self, server: int) -> bool:
        return server == self.me or server in self.core.membership.up

    def _finish(self, plan: Plan, state: str, reason: str) -> None:
        plan.state, plan.reason, plan.finished = state, reason, time.time()
        if self._changed(plan):
            self.core.events.add(f"roll-out {plan.id} {state}" + (f": {reason}" if reason else ""))

    # -- status ------------------------------------------------------------------

    def versions(self) -> dict[int, str]:
        out = {self.me: self.core.version}
        out.update((peer_id, view.version) for peer_id, view in self.core.membership.peers.items())
        return dict(sorted(out.items()))

    def status(self) -> dict[str, Any]:
        """Each server's version, the roll-out this server knows, and warnings (``clusterd update status``)."""
        versions = self.versions()
        plan = self.plan
        warnings = []
        if len(set(versions.values())) > 1:
            groups: dict[str, list[int]] = {}
            for server, version in versions.items():
                groups.setdefault(version or "(unknown)", []).append(server)
            warnings.append("servers run different versions: " + "; ".join(
                f"{v} on {', '.join(map(str, ids))}" for v, ids in groups.items()))
        if plan is not None and plan.state in ACTIVE and plan.coordinator != self.me \
                and plan.coordinator not in self.core.membership.up:
            warnings.append(f"roll-out {plan.id} is interrupted: its coordinator, server {plan.coordinator}, is "
                            "down; run clusterd update resume (or abort) on any server")
        done = sum(s.state == "done" for s in plan.steps.values()) if plan else 0
        return {"versions": {str(k): v for k, v in versions.items()}, "rollout": plan.as_data() if plan else None,
                "coordinating": self.task is not None, "progress": f"{done} of {len(plan.order)}" if plan else "",
                "warnings": warnings}
