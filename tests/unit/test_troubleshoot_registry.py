"""The registry covers appendix B exactly once (then the S-items); docs/troubleshooting.md is written from it."""

from pathlib import Path

import pytest

from runbook.config import Settings
from troubleshoot import docs as troubleshoot_docs
from troubleshoot.registry import REGISTRY, ordered, register, select

REPO = Path(__file__).resolve().parents[2]


def test_one_diagnostic_per_guide_item():
    items = ordered()
    assert [d.id for d in items] == [*(f"B-{n}" for n in range(1, 20)), "S-1", "S-2", "S-3", "C-1", "C-2"]
    for d in items:
        for text in (d.title, d.symptom, d.cause, d.detection, d.remedy):
            assert text.strip(), d.id
        assert d.fix is not None, d.id
        assert d.scope in ("host", "cloud")
        assert d.scope == "cloud" or d.probes(Settings()), f"{d.id} reads no host facts"
    assert {d.id for d in items if d.scope == "cloud"} == {"B-1", "B-16"}


def test_only_selects_and_refuses_unknown_ids():
    assert [d.id for d in select("B-3, b-10,12,s-1")] == ["B-3", "B-10", "B-12", "S-1"]
    assert len(select("")) == 24
    assert [d.id for d in select("c-2,C-1")] == ["C-1", "C-2"]
    with pytest.raises(KeyError, match=r"unknown item\(s\) \['B-20'\]"):
        select("B-20")


def test_registering_an_id_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        register(REGISTRY["B-1"])


def test_troubleshooting_doc_is_up_to_date():
    current = (REPO / "docs" / "troubleshooting.md").read_text()
    assert current == troubleshoot_docs.troubleshooting_markdown(), "docs/troubleshooting.md is stale: run `inv docs`"


def test_doc_has_every_item_with_symptom_cause_detection_and_fix():
    text = troubleshoot_docs.troubleshooting_markdown()
    for d in ordered():
        section = text.split(f"\n## {d.id}\n", 1)[1].split("\n## ", 1)[0]
        for label in ("**Symptom:**", "**Cause:**", "**Detected by:**", "**Fix (`--fix`):**"):
            assert label in section, (d.id, label)
    assert "`Unable to locate package`" in text and "`Not enough SMs to use max_autotune_gemm mode`" in text
