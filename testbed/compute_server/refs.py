"""Zonal resource references in request bodies: full or partial URLs, in the request's zone.

instances.insert takes machineType, guestAccelerators[].acceleratorType and
initializeParams.diskType as "full or partial URL" (compute.v1.json, Instance.machineType,
AcceleratorConfig.acceleratorType, AttachedDiskInitializeParams.diskType; the same text is on
https://cloud.google.com/compute/docs/reference/rest/v1/instances). Only instance templates take
bare names, so a bare `g2-standard-4` or `pd-ssd` sent to instances.insert is malformed, and a
URL naming another zone cannot be used for a VM in this one.
"""

from __future__ import annotations

import re

from . import errors

_BASES = ("https://www.googleapis.com/compute/v1/", "https://compute.googleapis.com/compute/v1/")


def zonal(value: str, field: str, zone: str, collection: str) -> str:
    """The resource name in *value*, which must be [https://.../compute/v1/][projects/P/]zones/Z/<collection>/NAME."""
    path = value
    for base in _BASES:
        if path.startswith(base):
            path = path[len(base):]
            break
    m = re.fullmatch(rf"(?:projects/[^/]+/)?zones/(?P<zone>[^/]+)/{collection}/(?P<name>[^/]+)", path)
    if not m:
        # Compute's "Invalid value for field" form; "The URL is malformed." as Compute words it for references.
        raise errors.invalid_field(field, value, "The URL is malformed.")
    if m["zone"] != zone:
        # Paraphrased: the referenced resource must be in the instance's zone.
        raise errors.invalid_field(
            field, value, f"The {collection[:-1]} must be in the same zone as the instance ('{zone}'), "
            f"not '{m['zone']}'.",
        )  # fmt: skip
    return m["name"]
