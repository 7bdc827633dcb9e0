"""Guide section 6: the verification checklist (GPU, services, reachability, monitoring)."""
