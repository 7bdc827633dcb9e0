"""l4-runbook: the L4 + vLLM setup guide as idempotent, re-runnable steps.

The package is a map of the guide: ``sections/`` holds one module per guide
section, ``engine/`` the check -> diff -> apply machinery they share.
"""

__version__ = "0.1.0"
