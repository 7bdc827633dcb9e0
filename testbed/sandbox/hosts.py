"""Sandbox host lifecycle: create, boot, power off, remove; up/down/status over all of them.

A host is a copy of the cached image (image.py) in <state>/hosts/l4rb-N/root, given its own
identity (keys.py, guest.py, gpu_kit.py), its own network (network.py) and booted with
systemd-nspawn (nspawn.py). poweroff/boot keep the root, like stopping and starting a cloud VM;
remove/down delete it. Every operation is idempotent and holds the state dir's lock.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import doubles_monitoring, doubles_vllm, gpu_kit, guest, keys, network, nspawn, preflight, proxy, state
from .errors import SandboxError
from .image import ensure_image
from .model import SandboxHost
from .naming import MAX_HOSTS, PREFIX, SSH_USER, guest_ip, host_index, host_name, proxy_url
from .paths import client_key, console_log, host_dir, host_root, hosts_dir, known_hosts
from .shell import run, say
from .ssh import wait_ready

BOOT_TIMEOUT = 180


def up(count: int = 1) -> list[SandboxHost]:
    """Make `count` hosts run: running ones are reused, stopped ones booted, missing ones created."""
    if not 1 <= count <= MAX_HOSTS:
        raise SandboxError(f"count must be 1..{MAX_HOSTS}, not {count}")
    preflight.check()
    with state.locked():
        records = state.load()
        hosts = [_ensure_running(name, records) for name in _by_index(records)[:count]]
        while len(hosts) < count:
            hosts.append(_reserve_and_create(None, records))
    return hosts


def create(name: str | None = None) -> SandboxHost:
    """One host, by name (l4rb-N) or at the lowest free index; an existing one is just brought up."""
    preflight.check()
    with state.locked():
        records = state.load()
        if name is not None and name in records:
            return _ensure_running(name, records)
        return _reserve_and_create(name, records)


def _reserve_and_create(name: str | None, records: dict[str, state.Record]) -> SandboxHost:
    """Pick a slot under the machine-wide lock and claim its network at once: other state dirs
    (tests, a benchmark, a user's sandbox) pick slots too."""
    with state.machine_locked():
        index = host_index(name) if name is not None else _free_index(records)
        if name is not None and index in network.existing_indices():
            raise SandboxError(f"{name} is in use by another sandbox on this machine (netns {name} exists)")
        network.create(index)
    try:
        return _create(index, records)
    except BaseException:
        network.delete(index)
        raise


def status() -> list[SandboxHost]:
    records = state.load()
    return [_host(name, records[name]) for name in _by_index(records)]


def boot(name: str) -> SandboxHost:
    """Start a stopped host from its kept root (like starting a stopped VM)."""
    preflight.check()
    with state.locked():
        records = state.load()
        _require(name, records)
        return _ensure_running(name, records)


def poweroff(name: str) -> SandboxHost:
    """Clean guest poweroff, keeping the root and the network (like stopping a VM)."""
    with state.locked():
        records = state.load()
        _require(name, records)
        say(f"powering off {name}")
        nspawn.stop(records[name].get("pid"), name)
        records[name]["pid"] = None
        state.save(records)
        return _host(name, records[name])


def remove(name: str) -> None:
    """Power off and delete the host: its root, network, known_hosts entry and record."""
    with state.locked():
        records = state.load()
        _remove(name, records)
    proxy.stop_if_unused()


def down(names: list[str] | None = None) -> list[str]:
    """Remove the named hosts, or all of them; the proxy stops when no host is left."""
    with state.locked():
        records = state.load()
        targets = list(names) if names is not None else _by_index(records)
        _power_off_together([n for n in targets if n in records], records)
        for name in targets:
            _remove(name, records)
    proxy.stop_if_unused()
    return targets


def _power_off_together(names: list[str], records: dict[str, state.Record]) -> None:
    """A guest's clean poweroff takes seconds (its systemd stops every service): all of them at once, so
    taking down N hosts costs about one poweroff, not N."""
    if len(names) < 2:
        return
    with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
        for done in [pool.submit(nspawn.stop, records[name].get("pid"), name) for name in names]:
            done.result()


def _create(index: int, records: dict[str, state.Record]) -> SandboxHost:
    name = host_name(index)
    started = time.monotonic()
    image = ensure_image()
    say(f"creating {name} ({guest_ip(index)})")
    folder = host_dir(name)
    root = host_root(name)
    if folder.exists():
        shutil.rmtree(folder)  # leftovers of a host that was never recorded
    folder.mkdir(parents=True, mode=0o700)
    try:
        partial = folder / "root.partial"
        run(["cp", "-a", "--reflink=auto", image, partial], timeout=900)
        partial.rename(root)
        keys.ensure_client_key()
        keys.pin(guest_ip(index), keys.make_host_key(root, name))
        guest.provision(root, hostname=name, proxy_url=proxy_url(index), authorized_key=keys.client_public_key())
        gpu_kit.install_gpu_kit(root)
        doubles_vllm.install_vllm_index(root)
        doubles_monitoring.install_monitoring_doubles(root)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # not recorded yet: leave nothing behind
        keys.unpin(guest_ip(index))
        raise
    records[name] = {"index": index, "pid": None, "image": image.parent.name}
    state.save(records)
    host = _boot(name, records)
    host.action = "created"
    say(f"{name} is up in {time.monotonic() - started:.0f}s")
    return host


def _ensure_running(name: str, records: dict[str, state.Record]) -> SandboxHost:
    record = records[name]
    if not host_root(name).is_dir():
        say(f"{name}: its root is gone; recreating it")
        _remove(name, records)
        return _create(record["index"], records)
    if nspawn.alive(record.get("pid"), name):
        host = _host(name, record)
        wait_ready(host, lambda: nspawn.alive(record.get("pid"), name), console_log(name), BOOT_TIMEOUT)
        host.action = "reused"
        say(f"{name} is already running; reusing it")
        return host
    host = _boot(name, records)
    host.action = "booted"
    return host


def _boot(name: str, records: dict[str, state.Record]) -> SandboxHost:
    record = records[name]
    index = record["index"]
    root = host_root(name)
    network.create(index)
    proxy.ensure_running()
    keys.pin(guest_ip(index), keys.host_public_key(root))
    nspawn.cleanup(name)
    say(f"booting {name}")
    pid = nspawn.start(name, root, network.netns_path(index), console_log(name))
    record["pid"] = pid
    state.save(records)
    host = _host(name, record)
    try:
        wait_ready(host, lambda: nspawn.alive(pid, name), console_log(name), BOOT_TIMEOUT)
    except BaseException:
        nspawn.stop(pid, name, timeout=20)
        record["pid"] = None
        state.save(records)
        raise
    return host


def _remove(name: str, records: dict[str, state.Record]) -> None:
    """Only what this state dir owns: a name it does not know may be another sandbox's host."""
    index = host_index(name)
    if name not in records and not host_dir(name).exists():
        return
    say(f"removing {name}")
    nspawn.stop(records.get(name, {}).get("pid"), name)
    network.delete(index)
    if host_dir(name).exists():
        shutil.rmtree(host_dir(name))
    keys.unpin(guest_ip(index))
    if records.pop(name, None) is not None:
        state.save(records)


def _host(name: str, record: state.Record) -> SandboxHost:
    index = record["index"]
    if not host_root(name).is_dir():
        current = "missing"
    else:
        current = "running" if nspawn.alive(record.get("pid"), name) else "stopped"
    return SandboxHost(
        name=name, index=index, address=guest_ip(index), ssh_user=SSH_USER,
        ssh_key=client_key(), known_hosts=known_hosts(), proxy_url=proxy_url(index), state=current,
        root=host_root(name), console_log=console_log(name),
    )


def _by_index(records: dict[str, state.Record]) -> list[str]:
    return sorted(records, key=lambda name: records[name]["index"])


def _free_index(records: dict[str, state.Record]) -> int:
    """Lowest index free here and on the whole machine (other state dirs may run hosts too)."""
    taken = {r["index"] for r in records.values()} | network.existing_indices()
    taken |= {int(p.name[len(PREFIX):]) for p in _host_dirs()}
    for index in range(1, MAX_HOSTS + 1):
        if index not in taken:
            return index
    raise SandboxError(f"all {MAX_HOSTS} sandbox host slots are taken; `down` some first")


def _host_dirs() -> list[Path]:
    folder = hosts_dir()
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_dir() and p.name[len(PREFIX):].isdigit()]


def _require(name: str, records: dict[str, state.Record]) -> None:
    if name not in records:
        known = ", ".join(_by_index(records)) or "none"
        raise SandboxError(f"no sandbox host {name!r} (hosts: {known}); create it with `up`")
