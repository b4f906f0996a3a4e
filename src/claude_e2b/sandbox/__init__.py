"""Sandboxes: E2B's cloud or the local E2B-compatible server, behind one session type.

What is here is light (no e2b SDK), for the commands that only look at sandboxes.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Backend = Literal["e2b", "local"]
DEFAULT_TEMPLATE = "anthropic-claude-code"


@dataclass(frozen=True)
class SandboxSummary:
    """One running sandbox of ours, as ``list`` shows it."""

    backend: Backend
    sandbox_id: str
    metadata: Mapping[str, str]
    started_at: str | None
    end_at: str | None
