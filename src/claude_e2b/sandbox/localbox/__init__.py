"""An E2B-compatible local sandbox: envd's protocol served on the SDK's own stubs.

The launcher's names are importable from here; they are loaded on first use
(PEP 562), so reading the registry (``claude-e2b list``) does not load httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .launcher import (
        LocalBoxHandle,
        LocalBoxHost,
        LocalBoxInfo,
        LocalBoxOptions,
        kill_localbox,
        list_localboxes,
        start_localbox,
    )

__all__ = [
    "LocalBoxHandle",
    "LocalBoxHost",
    "LocalBoxInfo",
    "LocalBoxOptions",
    "kill_localbox",
    "list_localboxes",
    "start_localbox",
]


def __getattr__(name: str) -> Any:
    """The launcher's names, imported when first asked for."""
    if name in __all__:
        return getattr(importlib.import_module(".launcher", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
