"""What the simulated cloud offers: zones, machine types, GPUs, public images.

Static on purpose: the runbook asks these questions (which zones have an L4,
which image a family points at) and the answers must be stable across runs.
Which zones carry which accelerator is a fault setting, so stockouts and
"no L4 here" can be staged.
"""

from __future__ import annotations

from dataclasses import dataclass

ZONES = (
    "asia-northeast1-a",
    "asia-northeast1-b",
    "asia-northeast1-c",
    "asia-northeast3-a",
    "asia-northeast3-b",
    "asia-northeast3-c",
    "us-central1-a",
    "us-central1-b",
    "us-central1-c",
    "us-central1-f",
    "us-east4-a",
    "us-east4-b",
    "us-east4-c",
    "europe-west4-a",
    "europe-west4-b",
    "europe-west4-c",
)

DEFAULT_ACCELERATOR_ZONES = {
    "nvidia-l4": [
        "asia-northeast1-a",
        "asia-northeast1-c",
        "asia-northeast3-a",
        "asia-northeast3-b",
        "us-central1-a",
        "us-central1-b",
        "us-central1-c",
        "us-east4-a",
        "us-east4-c",
        "europe-west4-a",
        "europe-west4-b",
        "europe-west4-c",
    ],
    "nvidia-tesla-t4": ["asia-northeast1-a", "asia-northeast3-b", "us-central1-a", "us-central1-b", "europe-west4-b"],
}

ACCELERATORS = {
    # name: (description, maximumCardsPerInstance, regional quota metric)
    "nvidia-l4": ("NVIDIA L4", 8, "NVIDIA_L4_GPUS"),
    "nvidia-tesla-t4": ("NVIDIA T4", 4, "NVIDIA_T4_GPUS"),
}


@dataclass(frozen=True)
class MachineType:
    name: str
    cpus: int
    memory_mb: int
    accelerator: str | None = None  # bundled GPU (G2 family)
    accelerator_counts: tuple[int, ...] = ()


MACHINE_TYPES = {
    m.name: m
    for m in (
        MachineType("g2-standard-4", 4, 16384, "nvidia-l4", (1,)),
        MachineType("g2-standard-8", 8, 32768, "nvidia-l4", (1,)),
        MachineType("g2-standard-12", 12, 49152, "nvidia-l4", (1,)),
        MachineType("g2-standard-16", 16, 65536, "nvidia-l4", (1,)),
        MachineType("g2-standard-24", 24, 98304, "nvidia-l4", (2,)),
        MachineType("g2-standard-32", 32, 131072, "nvidia-l4", (1,)),
        MachineType("g2-standard-48", 48, 196608, "nvidia-l4", (4,)),
        MachineType("g2-standard-96", 96, 393216, "nvidia-l4", (8,)),
        MachineType("n1-standard-4", 4, 15360),
        MachineType("n1-standard-8", 8, 30720),
        MachineType("e2-medium", 2, 4096),
        MachineType("e2-standard-4", 4, 16384),
    )
}

SSD_DISK_TYPES = ("pd-ssd", "pd-balanced")
HYPERDISK_TYPES = ("hyperdisk-balanced", "hyperdisk-ml", "hyperdisk-throughput")
DISK_TYPES = ("pd-standard", "pd-balanced", "pd-ssd", *HYPERDISK_TYPES)
# G2 supports pd-balanced, pd-ssd, hyperdisk-ml and hyperdisk-throughput, not pd-standard:
# https://cloud.google.com/compute/docs/accelerator-optimized-machines (G2 "Supported disk types").
G2_DISK_TYPES = ("pd-balanced", "pd-ssd", "hyperdisk-ml", "hyperdisk-throughput")


def default_disk_type(machine: str) -> str:
    """The type of a disk created without diskType (AttachedDiskInitializeParams.diskType in compute.v1.json:
    pd-standard for first and second generation series; G2 is not named there, pd-balanced assumed)."""
    return "pd-balanced" if machine.startswith("g2-") else "pd-standard"

# Regional quota limits a fresh project starts with (SSD_TOTAL_GB as in the guide, B-16).
DEFAULT_QUOTA_LIMITS = {
    "CPUS": 24.0,
    "INSTANCES": 24.0,
    "NVIDIA_L4_GPUS": 1.0,
    "NVIDIA_T4_GPUS": 1.0,
    "SSD_TOTAL_GB": 250.0,
    "DISKS_TOTAL_GB": 4096.0,
    "IN_USE_ADDRESSES": 8.0,
}

# Project-wide limits (projects.get -> Project.quotas), next to the regional ones: the GPU quota is
# both per region (NVIDIA_L4_GPUS) and for all regions (GPUS_ALL_REGIONS), see "Allocation quotas",
# https://cloud.google.com/compute/resource-usage. New projects often start GPUS_ALL_REGIONS at 0
# (paraphrased); the default here is 1 so tests that are not about it can make a VM.
DEFAULT_PROJECT_QUOTA_LIMITS = {
    "GPUS_ALL_REGIONS": 1.0,
    "CPUS_ALL_REGIONS": 32.0,
    "FIREWALLS": 200.0,
    "IMAGES": 2000.0,
}

QUOTA_NAMES = {
    # metric: (quota metric name, limit name) as QuotaExceededInfo reports them
    "CPUS": ("compute.googleapis.com/cpus", "CPUS-per-project-region"),
    "INSTANCES": ("compute.googleapis.com/instances", "INSTANCES-per-project-region"),
    "NVIDIA_L4_GPUS": ("compute.googleapis.com/nvidia_l4_gpus", "NVIDIA-L4-GPUS-per-project-region"),
    "NVIDIA_T4_GPUS": ("compute.googleapis.com/nvidia_t4_gpus", "NVIDIA-T4-GPUS-per-project-region"),
    "SSD_TOTAL_GB": ("compute.googleapis.com/ssd_total_storage", "SSD-TOTAL-GB-per-project-region"),
    "DISKS_TOTAL_GB": ("compute.googleapis.com/disks_total_storage", "DISKS-TOTAL-GB-per-project-region"),
    "IN_USE_ADDRESSES": ("compute.googleapis.com/external_ip_addresses", "IN-USE-ADDRESSES-per-project-region"),
    "GPUS_ALL_REGIONS": ("compute.googleapis.com/gpus_all_regions", "GPUS-ALL-REGIONS-per-project"),
    "CPUS_ALL_REGIONS": ("compute.googleapis.com/cpus_all_regions", "CPUS-ALL-REGIONS-per-project"),
}

# Image projects whose images cannot boot a G2 machine (guide B-1).
G2_INCOMPATIBLE_IMAGE_PROJECTS = ("deeplearning-platform-release",)

# (project, name, family, creationTimestamp, diskSizeGb, architecture, deprecated-by)
_IMAGES = (
    ("ubuntu-os-accelerator-images", "ubuntu-accelerator-2204-amd64-with-nvidia-580-v20260128",
     "ubuntu-accelerator-2204-amd64-with-nvidia-580", "2026-01-28T10:12:03.511-08:00", 50, "X86_64", None),
    ("ubuntu-os-accelerator-images", "ubuntu-accelerator-2204-amd64-with-nvidia-580-v20251211",
     "ubuntu-accelerator-2204-amd64-with-nvidia-580", "2025-12-11T09:40:51.207-08:00", 50, "X86_64",
     "ubuntu-accelerator-2204-amd64-with-nvidia-580-v20260128"),
    ("ubuntu-os-accelerator-images", "ubuntu-accelerator-2204-amd64-with-nvidia-570-v20260115",
     "ubuntu-accelerator-2204-amd64-with-nvidia-570", "2026-01-15T11:02:44.930-08:00", 50, "X86_64", None),
    ("ubuntu-os-accelerator-images", "ubuntu-accelerator-2404-amd64-with-nvidia-580-v20260128",
     "ubuntu-accelerator-2404-amd64-with-nvidia-580", "2026-01-28T10:20:17.044-08:00", 50, "X86_64", None),
    ("ubuntu-os-accelerator-images", "ubuntu-accelerator-2204-arm64-with-nvidia-580-v20260128",
     "ubuntu-accelerator-2204-arm64-with-nvidia-580", "2026-01-28T10:31:29.618-08:00", 50, "ARM64", None),
    ("deeplearning-platform-release", "common-cu128-ubuntu-2204-nvidia-570-v20260121",
     "common-cu128-ubuntu-2204-nvidia-570", "2026-01-21T14:05:12.101-08:00", 50, "X86_64", None),
    ("deeplearning-platform-release", "pytorch-2-7-cu128-ubuntu-2204-nvidia-570-v20260121",
     "pytorch-2-7-cu128-ubuntu-2204-nvidia-570", "2026-01-21T14:18:40.733-08:00", 100, "X86_64", None),
    ("deeplearning-platform-release", "common-cu124-debian-11-py310-v20250115",
     "common-cu124-debian-11-py310", "2025-01-15T08:51:02.377-08:00", 50, "X86_64", None),
    ("ubuntu-os-cloud", "ubuntu-2204-jammy-v20260120", "ubuntu-2204-lts",
     "2026-01-20T07:44:10.310-08:00", 10, "X86_64", None),
    ("ubuntu-os-cloud", "ubuntu-2404-noble-amd64-v20260120", "ubuntu-2404-lts-amd64",
     "2026-01-20T07:51:36.820-08:00", 10, "X86_64", None),
    ("debian-cloud", "debian-12-bookworm-v20260114", "debian-12",
     "2026-01-14T12:00:41.902-08:00", 10, "X86_64", None),
)  # fmt: skip


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def regions() -> list[str]:
    return sorted({region_of(z) for z in ZONES})


def images(base: str) -> list[dict]:
    """Every public image as the API returns it, deprecated ones included."""
    out = []
    for n, (project, name, family, created, size, arch, replacement) in enumerate(_IMAGES):
        img = {
            "kind": "compute#image",
            "id": str(5_000_000_000_000_000_000 + n * 7919),
            "creationTimestamp": created,
            "name": name,
            "description": f"Image of family {family}",
            "sourceType": "RAW",
            "status": "READY",
            "archiveSizeBytes": str(size * 1_000_000_000 // 7),
            "diskSizeGb": str(size),
            "licenses": [f"{base}projects/{project}/global/licenses/{family}"],
            "family": family,
            "selfLink": f"{base}projects/{project}/global/images/{name}",
            "labelFingerprint": "42WmSpB8rSM=",
            "guestOsFeatures": [{"type": "VIRTIO_SCSI_MULTIQUEUE"}, {"type": "UEFI_COMPATIBLE"},
                                {"type": "GVNIC"}, {"type": "SEV_CAPABLE"}],
            "storageLocations": ["us", "eu", "asia"],
            "architecture": arch,
            "_project": project,
        }  # fmt: skip
        if replacement:
            img["deprecated"] = {
                "state": "DEPRECATED",
                "replacement": f"{base}projects/{project}/global/images/{replacement}",
            }
        out.append(img)
    return out
