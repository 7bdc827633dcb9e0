"""The systemd units of guide section 7: all the same shape, one place to write them."""

from __future__ import annotations


def unit_text(guide: str, description: str, exec_start: str, after: str = "network.target",
              requires: str = "") -> str:
    """A root service restarted on failure, as in the guide's 7-4, 7-5 and 7-6 units."""
    return (
        f"# Managed by l4-runbook (guide {guide}).\n"
        "[Unit]\n"
        f"Description={description}\n"
        f"After={after}\n"
        + (f"Requires={requires}\n" if requires else "")
        + "\n[Service]\n"
        "User=root\n"
        f"{exec_start}\n"
        "Restart=always\n"
        "RestartSec=5\n"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n"
    )
