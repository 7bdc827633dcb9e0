"""Guide section 6: the verification checklist (GPU, services, reachability, monitoring).

gpu.py judges nvidia-smi's machine formats; rows.py defines the checklist rows; batch.py and probes.py
read a host's facts in one round trip (troubleshoot reuses them); reach.py looks from the controller;
run.py runs the rows on every host; loading.py reads hosts.toml with the secrets optional.
"""
