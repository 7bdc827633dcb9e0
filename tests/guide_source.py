"""The setup guide the runbook encodes, for tests that compare our output with it.

It is not part of the repository: it lives in ../shared/guide/ beside the checkout (or in the folder
L4RB_GUIDE_DIR names). Tests that need it are skipped, with that reason, where it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUIDE_DIR = Path(os.environ.get("L4RB_GUIDE_DIR") or REPO.parent / "shared" / "guide")


def guide_text() -> str:
    """The Korean setup guide's Markdown; skips the calling test when there is none."""
    found = sorted(GUIDE_DIR.glob("l4-vllm-setup-guide*.md"))
    if not found:
        pytest.skip(f"the setup guide is not there: no l4-vllm-setup-guide*.md in {GUIDE_DIR}")
    return found[0].read_text(encoding="utf-8")


def heredoc(text: str, opening: str) -> str:
    """The body of the guide's `... << 'EOF'` block whose first line is *opening*."""
    if opening not in text:
        raise AssertionError(f"the guide has no block starting {opening!r}")
    return text.split(opening + "\n", 1)[1].split("\nEOF\n", 1)[0] + "\n"
