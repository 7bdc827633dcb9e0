"""Per-host files written into a host's root before its first boot.

Login for the controller's key, the host's name, and the way out: the guest has no route to the
internet, only to the controller's proxy, so apt, pip and login shells are pointed at it. The
controller may itself reach registries through a TLS-inspecting proxy, so the guest gets the
controller's CA bundle (both as its bundle and as a local CA, so update-ca-certificates keeps it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .naming import SUBNET

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
GUEST_UID = GUEST_GID = 1000
NO_PROXY = f"localhost,127.0.0.1,{SUBNET}"
# Ubuntu puts this PATH in /etc/environment (Debian does not), so sbin tools resolve for `ubuntu`.
UBUNTU_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/snap/bin"


def provision(root: Path, *, hostname: str, proxy_url: str, authorized_key: str) -> None:
    authorize(root, authorized_key)
    set_hostname(root, hostname)
    configure_proxy(root, proxy_url)
    trust_controller_ca(root)


def authorize(root: Path, public_key: str) -> None:
    ssh_dir = root / "home/ubuntu/.ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(public_key.strip() + "\n")
    for path, mode in ((ssh_dir, 0o700), (keys, 0o600)):
        os.chown(path, GUEST_UID, GUEST_GID)
        path.chmod(mode)


def set_hostname(root: Path, hostname: str) -> None:
    (root / "etc/hostname").write_text(f"{hostname}\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
    # No DNS behind the veth: an empty resolver config fails fast (127.0.0.1) instead of timing out.
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("# sandbox host: no DNS; reach the outside through the proxy in /etc/environment\n")


def configure_proxy(root: Path, proxy_url: str) -> None:
    (root / "etc/apt/apt.conf.d/90l4rb-proxy").write_text(
        f'Acquire::http::Proxy "{proxy_url}";\nAcquire::https::Proxy "{proxy_url}";\n'
    )
    env = {
        "PATH": UBUNTU_PATH,
        "http_proxy": proxy_url, "https_proxy": proxy_url,
        "HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url,
        "no_proxy": NO_PROXY, "NO_PROXY": NO_PROXY,
        # Tools with their own CA store (uv, requests) must trust the controller's CA too.
        "SSL_CERT_FILE": str(CA_BUNDLE), "REQUESTS_CA_BUNDLE": str(CA_BUNDLE),
    }
    environment = root / "etc/environment"
    kept = []
    if environment.exists():
        kept = [line for line in environment.read_text().splitlines()
                if line.split("=", 1)[0].strip() not in env]
    environment.write_text(
        "".join(f"{line}\n" for line in kept) + "".join(f'{k}="{v}"\n' for k, v in env.items())
    )
    (root / "etc/pip.conf").write_text(f"[global]\nproxy = {proxy_url}\ncert = {CA_BUNDLE}\n")


def trust_controller_ca(root: Path, bundle: Path = CA_BUNDLE) -> None:
    if not bundle.is_file():
        return
    for target in (root / str(CA_BUNDLE).lstrip("/"),
                   root / "usr/local/share/ca-certificates/l4rb-controller.crt"):
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        shutil.copyfile(bundle, target)
        target.chmod(0o644)
