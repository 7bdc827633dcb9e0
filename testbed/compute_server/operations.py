"""Zone and global operations that progress PENDING -> RUNNING -> DONE in real time.

Each operation runs its task in a worker thread: wait `op_pending_s`, turn
RUNNING, run the task (which sleeps `op_running_s` and calls the backend
outside the lock), turn DONE with or without `error`. Tasks are named and
stored with the operation, so a restarted server resumes unfinished ones.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import errors
from .store import new_id, now, public

if TYPE_CHECKING:
    from .sim import Simulator

TASKS: dict[str, Callable[[Simulator, OpContext], None]] = {}
KEEP_DONE = 500


def task(name: str):
    """Register a task function under `name` (stored in the operation, so it survives restarts)."""

    def deco(fn):
        TASKS[name] = fn
        return fn

    return deco


class Shutdown(Exception):
    """The server is stopping; leave the operation unfinished so a restart resumes it."""


class OpContext:
    def __init__(self, sim: Simulator, project: str, name: str, spec: dict):
        self.sim = sim
        self.project = project
        self.name = name
        self.spec = spec  # the task's arguments

    def sleep(self, seconds: float) -> None:
        if self.sim.stopping.wait(max(seconds, 0.0)):
            raise Shutdown()


def _op_name() -> str:
    ms = int(time.time() * 1000)
    u = uuid.uuid4().hex
    return f"operation-{ms}-{u[:13]}-{u[13:21]}-{u[21:29]}"


class Operations:
    def __init__(self, sim: Simulator):
        self.sim = sim
        self.store = sim.store

    # -- creating ---------------------------------------------------------------------------

    def start(
        self,
        project: str,
        *,
        zone: str | None,
        op_type: str,
        target_link: str,
        target_id: str,
        task_name: str | None = None,
        spec: dict | None = None,
        request_id: str | None = None,
        region: str | None = None,
    ) -> dict:
        """Record a PENDING operation (zonal, regional with *region*, else global) and launch its worker.
        Call with the store lock held."""
        name = _op_name()
        scope = ("zones", zone) if zone else ("regions", region) if region else ("global",)
        op = {
            "kind": "compute#operation",
            "id": new_id(),
            "name": name,
            "operationType": op_type,
            "targetLink": target_link,
            "targetId": target_id,
            "status": "PENDING",
            "user": "anonymous@local",
            "progress": 0,
            "insertTime": now(),
            "selfLink": self.sim.link(project, *scope, "operations", name),
            "_task": {"name": task_name, "spec": spec or {}},
        }
        if zone:
            op["zone"] = self.sim.link(project, "zones", zone)
        if region and not zone:
            op["region"] = self.sim.link(project, "regions", region)
        proj = self.store.project(project)
        proj["operations"][name] = op
        if request_id:
            proj["request_ids"][request_id] = name
        self._prune(proj)
        self.store.commit()
        self._launch(project, name)
        return public(op)

    @staticmethod
    def _prune(proj: dict) -> None:
        """Keep the newest KEEP_DONE finished operations, like the service's limited retention."""
        done = [n for n, op in proj["operations"].items() if op["status"] == "DONE"]
        for name in done[: max(0, len(done) - KEEP_DONE)]:  # dicts keep insertion order: oldest first
            del proj["operations"][name]
        live = set(proj["operations"])
        proj["request_ids"] = {rid: n for rid, n in proj["request_ids"].items() if n in live}

    def _launch(self, project: str, name: str) -> None:
        t = threading.Thread(target=self._run, args=(project, name), name=f"op-{name[-8:]}", daemon=True)
        self.sim.workers.append(t)
        t.start()

    def resume_all(self) -> None:
        with self.store.lock:
            pending = [
                (project, name)
                for project, proj in self.store.data["projects"].items()
                for name, op in proj.get("operations", {}).items()
                if op["status"] != "DONE"
            ]
        for project, name in pending:
            self._launch(project, name)

    # -- running ----------------------------------------------------------------------------

    def _run(self, project: str, name: str) -> None:
        with self.store.lock:
            op = self.store.project(project)["operations"][name]
            spec = op.get("_task") or {}
        ctx = OpContext(self.sim, project, name, spec.get("spec", {}))
        failure = None
        try:
            if op["status"] == "PENDING":
                ctx.sleep(self.sim.faults.op_pending_s)
                with self.store.lock:
                    op["status"] = "RUNNING"
                    op["startTime"] = now()
                    self.store.commit()
            fn = TASKS.get(spec.get("name") or "")
            if fn is None:
                ctx.sleep(self.sim.faults.op_running_s)
            else:
                fn(self.sim, ctx)
        except Shutdown:
            return
        except errors.OpFailure as exc:
            failure = exc
        except Exception as exc:  # a backend or task bug: the operation fails, the server lives on
            failure = errors.OpFailure("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}", 500)
        with self.store.lock:
            op["status"] = "DONE"
            op["progress"] = 100
            op.setdefault("startTime", now())
            op["endTime"] = now()
            if failure:
                failure.apply(op)
            self.store.commit()

    # -- reading ----------------------------------------------------------------------------

    def find(self, project: str, zone: str | None, name: str, region: str | None = None) -> dict:
        op = self.store.project(project)["operations"].get(name)
        if op is None or self._scope(op) != self._want(project, zone, region):
            where = f"zones/{zone}" if zone else f"regions/{region}" if region else "global"
            raise errors.not_found(f"projects/{project}/{where}/operations/{name}")
        return op

    @staticmethod
    def _scope(op: dict) -> tuple[str | None, str | None]:
        return op.get("zone") or None, op.get("region") or None

    def _want(self, project: str, zone: str | None, region: str | None) -> tuple[str | None, str | None]:
        return (self.sim.link(project, "zones", zone) if zone else None,
                self.sim.link(project, "regions", region) if region and not zone else None)

    def by_request_id(self, project: str, request_id: str | None) -> dict | None:
        if not request_id:
            return None
        proj = self.store.project(project)
        name = proj["request_ids"].get(request_id)
        op = proj["operations"].get(name) if name else None
        return public(op) if op else None

    def wait(self, project: str, zone: str | None, name: str, region: str | None = None) -> dict:
        """Block until DONE, a status change, or `wait_max_s` (the real API may also return early)."""
        deadline = time.monotonic() + self.sim.faults.wait_max_s
        with self.store.lock:
            op = self.find(project, zone, name, region)
            first = op["status"]
            while op["status"] != "DONE" and op["status"] == first:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.sim.stopping.is_set():
                    break
                self.store.changed.wait(min(remaining, 0.5))
                op = self.find(project, zone, name, region)
            return public(op)

    def listing(self, project: str, zone: str | None, region: str | None = None) -> list[dict]:
        want = self._want(project, zone, region)
        ops = self.store.project(project)["operations"].values()
        return [public(op) for op in ops if self._scope(op) == want]
