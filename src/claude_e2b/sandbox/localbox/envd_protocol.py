"""envd's generated protocol modules, for the server process, without the SDK's client.

``import e2b.envd.filesystem.filesystem_connect`` runs ``e2b/__init__.py`` first, and
that imports the whole client (0.4-0.55 s of the server's 0.5-0.73 s start-up, which
every local sandbox waits for). The server needs only the generated modules (protobuf
and connectrpc, 0.1 s), so its entry point registers ``e2b`` as a bare package (its
directory, its ``__init__`` not run) before importing them. Only in the server's own
process: anywhere else the SDK may be imported after, and must be whole.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

SDK = "e2b"


def without_sdk_client() -> None:
    """Let ``e2b.envd.*`` import without ``e2b/__init__`` (no-op once e2b is imported)."""
    if SDK in sys.modules:
        return
    found = importlib.util.find_spec(SDK)  # a top-level spec: found, not imported
    if found is None or not found.submodule_search_locations:
        return  # not installed as a package: the server's own import says so
    spec = ModuleSpec(SDK, None, is_package=True)
    spec.submodule_search_locations = list(found.submodule_search_locations)
    package = ModuleType(SDK, "e2b's directory only (claude_e2b.sandbox.localbox.envd_protocol)")
    package.__spec__ = spec
    package.__path__ = list(found.submodule_search_locations)
    sys.modules[SDK] = package
