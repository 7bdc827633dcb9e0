"""The test bed, not the product: local Debian hosts, a local Compute API and the stand-ins they run.

Installed with the `sandbox` extra. The product reaches it only through runbook.testbed_link, and
only when hosts.toml says `inventory.target = "sandbox"`.
"""
