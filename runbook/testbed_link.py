"""The one door from the product to the test bed (the `sandbox` extra).

`inventory.target = "sandbox"` needs the local test hosts and the local Compute API, which live
in the separate `testbed` package. The product imports it only through here, only when that
target is chosen, and says how to install it when it is missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import ConfigError


def load(module: str = "") -> ModuleType:
    """`testbed` or one of its modules, e.g. load("sandbox")."""
    name = "testbed" + (f".{module}" if module else "")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and (err.name == "testbed" or err.name.startswith("testbed.")):
            raise ConfigError(
                "inventory.target = \"sandbox\" needs the test bed: pip install 'l4-runbook[sandbox]' "
                "(or run from a checkout of the project)"
            ) from err
        raise
