"""docs/ is generated from the steps: CI fails when someone changes a step and not the docs."""

from pathlib import Path

from runbook import docs

REPO = Path(__file__).resolve().parents[2]


def test_runbook_doc_is_up_to_date():
    current = (REPO / "docs" / "runbook.md").read_text()
    assert current == docs.runbook_markdown(REPO), "docs/runbook.md is stale: run `inv docs`"


def test_runbook_doc_covers_every_step_and_hides_secrets():
    text = docs.runbook_markdown(REPO)
    for heading in ("## `inv firewall` — guide §1", "## `inv vm` — guide §2", "## `inv vllm` — guide §3",
                    "## `inv ai-server` — guide §4", "## `inv cleanup --delete --firewall` — guide §8"):
        assert heading in text
    assert "systemd-analyze verify" in text and "--enforce-eager" in text
    assert "VLLM_API_KEY=********" in text and "<VLLM_API_KEY>" not in text  # secret values masked
