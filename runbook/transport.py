"""How a script reaches a host: over SSH (Fabric) or on this machine (--local).

Every remote action is one bash script sent on stdin to ``bash -s`` (through
``sudo -n`` when we are not root). Nothing we send ever appears in a command
line, so ``ps`` on the host never shows a secret, and one script can gather a
whole section's facts in a single round trip.
"""

from __future__ import annotations

import getpass
import io
import logging
import os
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import invoke
import paramiko
from fabric import Connection
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from .errors import RunbookError
from .secrets import mask

# We report connection problems ourselves, in one line; paramiko would add tracebacks on stderr.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

HOST_LOCK = "/run/l4-runbook.lock"
LOCK_WAIT = 900  # seconds: long enough for a killed run's last install to finish
# Held by one run from its first fact gathering to its last change, so two runs never plan against
# each other's half-made changes; released when the run ends or its SSH session dies.
RUN_LOCK = "/run/l4-runbook.run.lock"
RUN_HOLDER = "/run/l4-runbook.run.holder"


def run_lock_script(holder: str, wait: int) -> str:
    """Take RUN_LOCK (or say who holds it), record *holder*, then hold it until stdin closes."""
    waiting = (f"flock -w {int(wait)} 8 || {{ echo \"TIMEOUT $(cat {RUN_HOLDER} 2>/dev/null)\"; exit 75; }}"
               if wait > 0 else "exit 75")
    return (
        f"exec 8>>{RUN_LOCK}\n"
        f"if ! flock -n 8; then echo \"BUSY $(cat {RUN_HOLDER} 2>/dev/null)\"; {waiting}; fi\n"
        f"printf '%s\\n' {shlex.quote(holder)} > {RUN_HOLDER}\n"
        "echo LOCKED\n"
        # bash reads a script on stdin byte by byte, so cat gets what follows it: nothing, until the
        # controller closes the session (or dies): then EOF, exit, and the lock is free again.
        "cat >/dev/null\n"
        f": > {RUN_HOLDER}\n"
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


class _Script(io.StringIO):
    """stdin for Invoke/Fabric runners, which read 1 byte per 10 ms from non-terminals:
    hand over 64 KiB per read instead, so a large script arrives in milliseconds."""

    def read(self, size: int | None = -1) -> str:
        return super().read(65536)


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def tail(self, lines: int = 15) -> str:
        text = (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).strip()
        return mask("\n".join(text.splitlines()[-lines:]))


@dataclass
class Transport:
    """Runs bash scripts on one host and counts how many it ran."""

    name: str
    login_user: str
    commands: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _shell(self) -> str:
        prefix = "" if self.login_user == "root" else "sudo -n "
        return prefix + "bash -s"

    def run(self, script: str, exclusive: bool = False) -> Result:
        """Run *script* as root on the host; the script travels on stdin only.

        *exclusive* scripts (changes) hold a host-wide lock: a run killed on the controller
        can leave its last script still running on the host, and a new run must not change
        the same things under it; it waits instead.
        """
        with self._lock:
            self.commands += 1
        return self._execute(script, exclusive)

    def _execute(self, script: str, exclusive: bool = False) -> Result:
        if exclusive:
            script = (f"exec 9>{HOST_LOCK}\nif ! flock -n 9; then echo 'waiting for another l4-runbook change "
                      f"on this host to finish' >&2; flock -w {LOCK_WAIT} 9 || {{ echo 'another l4-runbook run "
                      f"is still changing this host ({HOST_LOCK}); try again later' >&2; exit 75; }}; fi\n"
                      + script)
        # Probes run Python inside users' venvs as root: never leave root-owned bytecode there.
        result = self._run(self._shell(), "set -o pipefail\nexport PYTHONDONTWRITEBYTECODE=1\n" + script)
        if result.rc != 0 and "sudo: a password is required" in result.stderr:
            raise RunbookError(
                f"{self.name}: user {self.login_user!r} needs passwordless sudo (as on GCP images)"
            )
        return result

    def start(self, script: str) -> Callable[[], Result]:
        """Send a read-only *script* now, in a thread of its own; the returned call waits for its Result.

        Counted here, in the caller's thread, so a section's count never takes in a command another
        thread sent while it ran. Several may be in flight on one connection (one SSH channel each).
        """
        with self._lock:
            self.commands += 1
        done: dict[str, Result | BaseException] = {}

        def send() -> None:
            try:
                done["result"] = self._execute(script)
            except BaseException as err:  # handed to whoever waits for it
                done["result"] = err

        thread = threading.Thread(target=send, name=f"{self.name}-read", daemon=True)
        thread.start()

        def wait() -> Result:
            thread.join()
            if isinstance(done["result"], BaseException):
                raise done["result"]
            return done["result"]

        return wait

    def _run(self, command: str, stdin: str) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError

    def _hold(self, command: str, stdin: str):  # pragma: no cover - abstract
        """Start *command* with *stdin* written and left open: (a line reader of its stdout, a closer)."""
        raise NotImplementedError

    def lock_run(self, wait: int = 0, notify=None) -> None:
        """Hold this host's run lock until close(); another run holding it is named in the error.

        *wait* seconds: how long to wait for that run to finish (0: refuse at once).
        """
        holder = (f"l4-runbook run by {getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} "
                  f"since {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        readline, close = self._hold(self._shell(), run_lock_script(holder, wait))
        while True:
            line = readline()
            if line.startswith("BUSY") and wait > 0:
                if notify:
                    notify(f"{self.name}: waiting up to {wait}s for another run: {_one_line(line[4:])}")
                continue
            break
        if line.startswith("LOCKED"):
            self._release = close
            return
        close()
        word, _, other = line.partition(" ")
        if word.strip() in ("BUSY", "TIMEOUT"):
            raise RunbookError(f"{self.name}: another run is using this host ({_one_line(other) or 'holder unknown'}); "
                               + ("it did not finish in time" if wait > 0 else "wait for it, or run with --wait N"))
        raise RunbookError(f"{self.name}: could not take the run lock {RUN_LOCK}: {_one_line(line) or 'no answer'}")

    def unlock_run(self) -> None:
        release = getattr(self, "_release", None)
        self._release = None
        if release:
            release()

    def close(self) -> None:
        """Release the connection, if any."""


class LocalTransport(Transport):
    """This machine itself: for running the runbook on the VM (``--local``)."""

    def __init__(self, name: str = "localhost"):
        super().__init__(name=name, login_user=getpass.getuser())
        self._ctx = invoke.Context()

    def _run(self, command: str, stdin: str) -> Result:
        r = self._ctx.run(command, in_stream=_Script(stdin), hide=True, warn=True, pty=False)
        return Result(r.exited, r.stdout, r.stderr)

    def _hold(self, command: str, stdin: str):
        proc = subprocess.Popen(shlex.split(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        proc.stdin.write(stdin)
        proc.stdin.flush()

        def close() -> None:
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

        return proc.stdout.readline, close

    def close(self) -> None:
        self.unlock_run()


class PinnedHostKeys(paramiko.MissingHostKeyPolicy):
    """Unknown host key: record it in the project's known_hosts (and say so) or refuse.

    Fabric's default accepts any key silently; we never do.
    """

    def __init__(self, known_hosts: Path, trust_on_first_use: bool, notify):
        self.known_hosts = known_hosts
        self.trust_on_first_use = trust_on_first_use
        self.notify = notify

    def missing_host_key(self, client, hostname, key):
        fingerprint = key.fingerprint if hasattr(key, "fingerprint") else key.get_base64()[:16]
        if not self.trust_on_first_use:
            raise RunbookError(
                f"{hostname}: host key {key.get_name()} {fingerprint} is not in {self.known_hosts}; "
                "add it there (or set ssh.trust_on_first_use = true)"
            )
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with open(self.known_hosts, "a") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.notify(f"{hostname}: first contact, pinned host key {key.get_name()} {fingerprint}")


class SshTransport(Transport):
    """A host over SSH with a pinned host key."""

    def __init__(
        self,
        name: str,
        address: str,
        user: str,
        port: int = 22,
        key_file: str | None = None,
        known_hosts: Path | None = None,
        trust_on_first_use: bool = False,
        connect_timeout: int = 15,
        notify=print,
    ):
        super().__init__(name=name, login_user=user)
        connect_kwargs: dict = {"allow_agent": not key_file, "look_for_keys": not key_file}
        if key_file:
            connect_kwargs["key_filename"] = [os.path.expanduser(key_file)]
        self.address = address
        self._conn = Connection(
            address, user=user, port=port, connect_timeout=connect_timeout, connect_kwargs=connect_kwargs
        )
        client = self._conn.client
        if known_hosts and known_hosts.exists():
            client.load_host_keys(str(known_hosts))
        key_address = address if port == 22 else f"[{address}]:{port}"
        if known_hosts:
            client.set_missing_host_key_policy(PinnedHostKeys(known_hosts, trust_on_first_use, notify))
        else:
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self._key_address = key_address
        self._connect_timeout = connect_timeout
        self._opening = threading.Lock()

    def _connect(self) -> None:
        """Open the connection, retrying what is transient (a busy sshd, a host still booting)."""
        with self._opening:  # connect_early() may be opening it in another thread right now
            if self._conn.is_connected:
                return
            retrying = Retrying(
                stop=stop_after_attempt(4), wait=wait_exponential(multiplier=1, max=8), reraise=True,
                retry=retry_if_exception(lambda e: isinstance(e, OSError | paramiko.SSHException)
                                         and not isinstance(e, paramiko.BadHostKeyException
                                                            | paramiko.AuthenticationException)),
            )
            retrying(self._open)

    def _open(self) -> None:
        """One attempt, on a socket of our own with Nagle's algorithm off.

        SSH sends many small packets and waits for the answer (key exchange, a channel request, a
        script and its end-of-file). With Nagle on, a small packet waits for the ACK of the one
        before, which the host delays by up to 40 ms (delayed ACK): about 40 ms per handshake and
        per command on a quiet machine, more than the commands themselves. OpenSSH's own client
        sets TCP_NODELAY for the same reason. Through a gateway (ProxyJump/ProxyCommand in
        ~/.ssh/config) Fabric makes the socket itself.
        """
        if self._conn.gateway:
            self._conn.open()
            return
        sock = socket.create_connection((self._conn.host, self._conn.port), timeout=self._connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn.connect_kwargs["sock"] = sock
        try:
            self._conn.open()
        except BaseException:
            sock.close()
            raise
        finally:
            del self._conn.connect_kwargs["sock"]

    def _run(self, command: str, stdin: str) -> Result:
        def run() -> Result:
            # A plain channel: the script goes in whole, stdout and stderr come back whole. (Fabric's
            # runner adds threads for echoing, watchers and a stdin poller a batch does not use.)
            # Sending, stdout and stderr each in their own thread: none can block the others (a large
            # script still being sent while the host already writes a lot).
            channel = self._conn.client.get_transport().open_session()
            try:
                channel.exec_command(command)
                errors: list[bytes] = []

                def send() -> None:
                    channel.sendall(stdin.encode())
                    channel.shutdown_write()

                workers = [threading.Thread(target=send, daemon=True),
                           threading.Thread(target=lambda: errors.append(channel.makefile_stderr("rb").read()),
                                            daemon=True)]
                for worker in workers:
                    worker.start()
                out = channel.makefile("rb").read()
                for worker in workers:
                    worker.join()
                rc = channel.recv_exit_status()
            finally:
                channel.close()
            return Result(rc, out.decode("utf-8", "replace"), errors[0].decode("utf-8", "replace") if errors else "")

        return self._guarded(run)

    def _hold(self, command: str, stdin: str):
        def start():
            channel = self._conn.client.get_transport().open_session()
            channel.exec_command(command)
            channel.sendall(("set -o pipefail\n" + stdin).encode())
            reader = channel.makefile("r")
            return reader.readline, channel.close

        return self._guarded(start)

    def _guarded(self, action):
        """*action* on the open connection, with connection problems as one clear RunbookError."""
        try:
            self._connect()
            return action()
        except RunbookError:
            raise
        except paramiko.BadHostKeyException as err:
            raise RunbookError(
                f"{self.name} ({self.address}): HOST KEY CHANGED (expected {err.expected_key.get_name()}, "
                f"got {err.key.get_name()}); refusing to connect. If the VM was recreated, remove its line "
                "from the known_hosts file and run again."
            ) from None
        except (OSError, paramiko.SSHException) as err:
            raise RunbookError(f"{self.name} ({self.address}): cannot connect over SSH: {err}") from None

    def close(self) -> None:
        self.unlock_run()
        self._conn.close()
