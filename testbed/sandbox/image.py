"""The cached Debian bookworm root every sandbox host is copied from.

Built once with debootstrap from the mirror in this machine's own apt sources, then post-set-up
(image_setup.py). The cache directory name is a hash of the whole recipe (suite, variant,
packages, mirror, post-setup code), so a changed recipe builds a new image and an unchanged one is
reused; images of other recipes are dropped once unused for a week (cache.py). A build happens in a
temporary directory that is renamed into place only when complete, so a killed build never leaves
something that looks like a finished image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from . import cache as caches
from . import image_setup
from .errors import SandboxError
from .paths import image_cache
from .shell import say, tail

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-venv", "python3-pip",
    "sudo", "curl", "ca-certificates", "iproute2", "git", "procps", "less",
)
APT_SOURCES = Path("/etc/apt")


def ensure_image() -> Path:
    """Path of the image's root directory, building it first if the recipe has no cached image."""
    recipe = _recipe()
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    cache = image_cache()
    final = cache / key
    if (final / "root").is_dir():
        return caches.used(final) / "root"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then finds the image
        if not (final / "root").is_dir():
            _build(recipe, cache, final, lock.fileno())
            # Images of other recipes stay while in use (another checkout's hosts are copied from them).
            caches.prune_unused(cache, keep=key)
    return caches.used(final) / "root"


def debian_mirror(apt_dir: Path = APT_SOURCES) -> str:
    """First Debian archive URI (not the security one) in the apt sources; env L4RB_DEBIAN_MIRROR wins."""
    override = os.environ.get("L4RB_DEBIAN_MIRROR")
    if override:
        return override
    uris: list[str] = []
    for sources in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", sources.read_text()):
            fields = _deb822(stanza)
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                uris += fields.get("uris", "").split()
    lists = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for source_list in lists:
        if source_list.is_file():
            for line in source_list.read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line).split()
                if len(words) >= 2 and words[0] == "deb":
                    uris.append(words[1])
    for uri in uris:
        if "debian" in uri and "security" not in uri and "ports" not in uri:
            return uri
    raise SandboxError(
        f"no Debian mirror found in {apt_dir}/sources.list(.d); set L4RB_DEBIAN_MIRROR to the URL "
        "of a Debian archive mirror"
    )


def _deb822(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    last = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0].isspace() and last:
            fields[last] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            last = name.strip().lower()
            fields[last] = value.strip()
    return fields


def _recipe() -> dict[str, object]:
    setup_code = Path(image_setup.__file__).read_bytes()
    return {
        "suite": SUITE,
        "variant": VARIANT,
        "packages": sorted(PACKAGES),
        "mirror": debian_mirror(),
        "post_setup": hashlib.sha256(setup_code).hexdigest(),
    }


def _build(recipe: dict[str, object], cache: Path, final: Path, lock_fd: int) -> None:
    for stale in cache.glob(".build-*"):
        _remove_build(stale)  # a killed build; we hold the lock, so nobody owns it
    work = cache / f".build-{final.name}-{os.getpid()}"
    work.mkdir()
    log = work / "debootstrap.log"
    root = work / "root"
    argv = [
        "debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}",
        SUITE, str(root), str(recipe["mirror"]),
    ]
    say(f"building the Debian {SUITE} image from {recipe['mirror']} (takes 1-2 minutes, once)")
    started = time.monotonic()
    proc = None
    try:
        with open(log, "w") as out:
            # debootstrap inherits the lock: if we are killed, it holds it until it ends too, so the
            # next builder cannot clear the directory under a still-running debootstrap.
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    pass_fds=(lock_fd,))
            next_report = started + 20
            while proc.poll() is None:
                time.sleep(0.5)
                if time.monotonic() >= next_report:
                    next_report += 20
                    say(f"  still building ({time.monotonic() - started:.0f}s): {tail(log, 1)}")
        if proc.returncode != 0:
            raise SandboxError(
                f"debootstrap failed (exit {proc.returncode}); last lines of {log}:\n{tail(log)}\n"
                "Check that the mirror is reachable, or set L4RB_DEBIAN_MIRROR."
            )
        image_setup.post_setup(root)
        (work / "recipe.json").write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")
        os.rename(work, final)
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _remove_build(work)
        raise
    say(f"image ready in {time.monotonic() - started:.0f}s: {final}")


def _remove_build(path: Path) -> None:
    """Remove a build dir, unmounting first what a killed debootstrap left mounted (proc, sys)."""
    prefix = str(path.resolve()) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
