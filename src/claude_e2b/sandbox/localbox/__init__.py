"""An E2B-compatible local sandbox: envd's protocol served on the SDK's own stubs."""

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
