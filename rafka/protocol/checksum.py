"""CRC-32C (Castagnoli), the checksum of record batches and producer snapshots.

The crc32c package's `__init__` looks up its own version through importlib.metadata: importing
that and scanning the installed distributions took ~13 ms of a broker's start. So its compiled
module is loaded on its own (0.7 ms) and its function bound here directly (no wrapper on the
produce path); where that layout is not found, the package as usual.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from types import ModuleType


def _compiled_module() -> ModuleType | None:
    """crc32c's extension module (crc32c._crc32c), without running the package's `__init__`."""
    try:
        package = importlib.util.find_spec("crc32c")
        if package is None or not package.submodule_search_locations:
            return None
        directory = package.submodule_search_locations[0]
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(directory, "_crc32c" + suffix)
            if os.path.exists(path):
                loader = importlib.machinery.ExtensionFileLoader("crc32c._crc32c", path)
                spec = importlib.util.spec_from_loader("crc32c._crc32c", loader)
                if spec is None:
                    return None
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
                return module if callable(getattr(module, "crc32c", None)) else None
    except (ImportError, OSError):
        return None
    return None


_module = _compiled_module()
if _module is not None:
    crc32c = _module.crc32c
else:  # pragma: no cover - another layout of the crc32c package
    from crc32c import crc32c  # noqa: F401
