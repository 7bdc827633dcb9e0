"""`inv sandbox.up/status/down`: the local test bed, for rehearsal and tests."""

from invoke import Collection, task
from invoke.exceptions import Exit

from runbook.errors import RunbookError


@task(help={"hosts": "how many hosts to have running (default 1)"})
def up(c, hosts=1):
    """Boot local Debian test hosts (systemd-nspawn, sshd, fake L4) to deploy onto."""
    from . import sandbox

    try:
        for h in sandbox.up(hosts):
            print(f"{h.name}  {h.address}  ssh -i {h.ssh_key} -o UserKnownHostsFile={h.known_hosts} "
                  f"{h.ssh_user}@{h.address}")
    except RunbookError as err:
        print(f"error: {err}")
        raise Exit(code=2) from None


@task
def status(c):
    """List the sandbox hosts and whether they are running."""
    from . import sandbox

    hosts = sandbox.status()
    if not hosts:
        print("no sandbox hosts")
    for h in hosts:
        print(f"{h.name}  {h.address}  {h.state}")


@task(help={"names": "comma-separated hosts to remove (default: all)"})
def down(c, names=""):
    """Power off and remove sandbox hosts (all by default)."""
    from . import sandbox

    sandbox.down([n for n in names.split(",") if n] or None)
    if not names:  # every host is gone, and with them the VMs of the local Compute API
        from . import local_api

        local_api.stop(forget=True)


sandbox = Collection("sandbox", up, status, down)
