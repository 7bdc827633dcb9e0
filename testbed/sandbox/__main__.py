"""python -m testbed.sandbox up|status|down|poweroff|boot|ssh: the test bed by hand."""

from __future__ import annotations

import argparse
import os
import sys

from . import boot, down, poweroff, status, up
from .errors import SandboxError
from .model import SandboxHost
from .ssh import ssh_argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="create/boot hosts (idempotent)")
    p_up.add_argument("--hosts", type=int, default=1, help="how many hosts (default 1)")
    sub.add_parser("status", help="list hosts and their state")
    p_down = sub.add_parser("down", help="remove hosts (all by default)")
    p_down.add_argument("names", nargs="*")
    for name in ("poweroff", "boot"):
        sub.add_parser(name, help=f"{name} one host, keeping its disk").add_argument("name")
    p_ssh = sub.add_parser("ssh", help="ssh to a host as ubuntu")
    p_ssh.add_argument("name")
    p_ssh.add_argument("remote", nargs=argparse.REMAINDER, help="command (default: a login shell)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            _table(up(args.hosts))
        elif args.command == "status":
            _table(status())
        elif args.command == "down":
            removed = down(args.names or None)
            print("removed: " + (", ".join(removed) or "nothing"))
        elif args.command == "poweroff":
            _table([poweroff(args.name)])
        elif args.command == "boot":
            _table([boot(args.name)])
        elif args.command == "ssh":
            host = next((h for h in status() if h.name == args.name), None)
            if host is None:
                raise SandboxError(f"no sandbox host {args.name!r}")
            command = ssh_argv(host, " ".join(args.remote))
            if not args.remote:
                command = [*command[:-3], "-t", command[-3]]  # interactive login shell
            os.execvp(command[0], command)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"error: {exc}; the sandbox needs root (run with sudo)", file=sys.stderr)
        return 1
    return 0


def _table(hosts: list[SandboxHost]) -> None:
    if not hosts:
        print("no sandbox hosts")
        return
    print(f"{'NAME':<9} {'STATE':<8} {'ADDRESS':<13} {'ACTION':<8} PROXY")
    for h in hosts:
        print(f"{h.name:<9} {h.state:<8} {h.address:<13} {h.action or '-':<8} {h.proxy_url}")
    h = hosts[0]
    print(f"\nssh: ssh -i {h.ssh_key} -o UserKnownHostsFile={h.known_hosts} -o StrictHostKeyChecking=yes "
          f"{h.ssh_user}@{h.address}")


if __name__ == "__main__":
    sys.exit(main())
