"""Cached builds of the test bed survive other versions' builds (parallel workers, other checkouts)."""

import os
import time

from testbed.sandbox import cache


def _build(folder, name, age_s: float):
    path = folder / name
    (path / "root").mkdir(parents=True)
    (path / "root" / "file").write_text(name)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_a_new_build_keeps_builds_in_use_and_drops_only_long_unused_ones(tmp_path):
    recent = _build(tmp_path, "aaaa", age_s=3600)  # another checkout built it an hour ago
    old = _build(tmp_path, "bbbb", age_s=cache.KEEP_UNUSED_S + 60)
    working = _build(tmp_path, ".build-123", age_s=cache.KEEP_UNUSED_S + 60)  # someone's build in progress
    new = _build(tmp_path, "cccc", age_s=0)
    assert cache.prune_unused(tmp_path, keep="cccc") == ["bbbb"]
    assert recent.is_dir() and working.is_dir() and new.is_dir() and not old.exists()


def test_using_a_build_keeps_it(tmp_path):
    old = _build(tmp_path, "aaaa", age_s=cache.KEEP_UNUSED_S + 60)
    assert cache.used(old) == old
    assert cache.prune_unused(tmp_path, keep="zzzz") == []
    assert (old / "root" / "file").read_text() == "aaaa"
