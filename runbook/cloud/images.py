"""What the guide and Google's docs say about images and disk quotas, as plain values: the preflight of
`inv vm` and troubleshoot's B-1/B-16 share them, and neither needs the Compute client to read them."""

from __future__ import annotations

# Image projects whose images cannot boot a G2 (L4) machine (guide 2-1, B-1).
G2_INCOMPATIBLE_IMAGE_PROJECTS = ("deeplearning-platform-release",)
GOOD_IMAGE = ("ubuntu-os-accelerator-images", "ubuntu-accelerator-2204-amd64-with-nvidia-580")
SSD_TYPES = ("pd-ssd", "pd-balanced")


def disk_metric(disk_type: str) -> str:
    """The regional quota a boot disk of this type counts against (B-16)."""
    return "SSD_TOTAL_GB" if disk_type in SSD_TYPES else "DISKS_TOTAL_GB"
