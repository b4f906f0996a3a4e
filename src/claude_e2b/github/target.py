"""Where a run publishes: the repository, its servers and the token, and the token's git form.

Plain values without PyGithub, so that deciding where to publish (before a run) and
pushing with git cost no import of the API client; ``api.py`` adapts PyGithub.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass


@dataclass(frozen=True)
class GitHubTarget:
    """Where to publish: API root, git server, ``owner/name`` and the token."""

    api_url: str  # GITHUB_API_URL (Enterprise Server: https://host/api/v3)
    server_url: str  # GITHUB_SERVER_URL: the git remote is {server_url}/{repository}.git
    repository: str
    token: str

    def __repr__(self) -> str:
        return f"GitHubTarget({self.api_url!r}, {self.server_url!r}, {self.repository!r}, ***)"

    @property
    def owner(self) -> str:
        """The repository's owner (the ``owner:`` of a head branch)."""
        return self.repository.partition("/")[0]

    @property
    def clone_url(self) -> str:
        """The HTTPS remote of the repository (no credentials in it, ever)."""
        return f"{self.server_url.rstrip('/')}/{self.repository}.git"


def basic_credential(token: str) -> str:
    """``base64(x-access-token:TOKEN)``, the form git sends in an Authorization header."""
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()
