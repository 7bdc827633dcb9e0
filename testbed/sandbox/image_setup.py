"""Post-setup of a freshly debootstrapped root, making it look like a GCP Ubuntu image.

The image cache key includes a hash of this file, so any edit here rebuilds the image.
Everything per host (host keys, authorized key, proxy, CA, hostname) is done later by guest.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from .shell import run

SUDOERS = "ubuntu ALL=(ALL) NOPASSWD:ALL\n"


def post_setup(root: Path) -> None:
    """Default user with passwordless sudo, sshd enabled, no identity baked into the image."""
    _add_default_user(root)
    _sudo_reads_environment(root)
    _enable_sshd(root)
    _strip_identity(root)
    # systemd-firstboot would prompt on the console for locale/timezone/password and hang boot.
    _symlink(root / "etc/systemd/system/systemd-firstboot.service", "/dev/null")
    # The host's sshd only offers the ed25519 key we generate and pin per host.
    conf = root / "etc/ssh/sshd_config.d/50-l4rb-hostkey.conf"
    conf.write_text("HostKey /etc/ssh/ssh_host_ed25519_key\n")


def _add_default_user(root: Path) -> None:
    """uid 1000 `ubuntu` with bash and NOPASSWD sudo, as cloud-init sets up on GCP Ubuntu."""
    run(["chroot", root, "useradd", "--create-home", "--uid", "1000", "--user-group",
         "--groups", "adm,sudo", "--shell", "/bin/bash", "ubuntu"])
    sudoers = root / "etc/sudoers.d/90-cloud-init-users"
    sudoers.write_text(SUDOERS)
    sudoers.chmod(0o440)


def _sudo_reads_environment(root: Path) -> None:
    """Ubuntu's sudo PAM stack loads /etc/environment (Debian's does not), so sudo'd commands get
    its PATH, and here also the proxy settings guest.py writes there."""
    pam = root / "etc/pam.d/sudo"
    line = "session    required   pam_env.so readenv=1 user_readenv=0"
    text = pam.read_text()
    if line not in text:
        anchor = "session    required   pam_limits.so\n"
        pam.write_text(text.replace(anchor, f"{anchor}\n{line}\n", 1) if anchor in text else f"{text}{line}\n")


def _enable_sshd(root: Path) -> None:
    _symlink(root / "etc/systemd/system/multi-user.target.wants/ssh.service",
             "/lib/systemd/system/ssh.service")
    _symlink(root / "etc/systemd/system/sshd.service", "/lib/systemd/system/ssh.service")


def _strip_identity(root: Path) -> None:
    """No host keys, empty machine-id, no hostname: each host gets its own at creation/boot."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    _symlink(root / "var/lib/dbus/machine-id", "/etc/machine-id")
    for leftover in ("etc/hostname", "etc/resolv.conf"):
        path = root / leftover
        if path.exists() or path.is_symlink():
            path.unlink()
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def _symlink(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    os.symlink(target, path)
