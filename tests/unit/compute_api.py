"""Settings shared by the tests that drive the local Compute server: short operations, quick retries."""

from runbook import gcp

FAST = {"op_pending_s": 0.02, "op_running_s": 0.06}
POLICY = gcp.RetryPolicy(initial=0.01, maximum=0.05, jitter=0.01, deadline=20, timeout=10)
