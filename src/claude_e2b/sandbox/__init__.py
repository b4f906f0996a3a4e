"""Sandboxes: E2B's cloud or the local E2B-compatible server, behind one session type."""

from typing import Literal

Backend = Literal["e2b", "local"]
DEFAULT_TEMPLATE = "anthropic-claude-code"
