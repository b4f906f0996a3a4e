"""What both directions of the sync agree on: git's file modes and the tar's compression."""

from __future__ import annotations

from typing import Literal

# How a tar travels between runner and sandbox: zstd where the sandbox has it, else gzip.
Codec = Literal["zstd", "gzip"]
CODECS: dict[str, Codec] = {"zstd": "zstd", "gzip": "gzip"}

# The modes of git's tree entries (`ls-files --stage`, `diff --raw`).
MODE_FILE = "100644"
MODE_EXECUTABLE = "100755"
MODE_SYMLINK = "120000"
# A nested repository that `git add -A` recorded as a gitlink: it has no content
# of its own in this repository, so it is reported but never packed or applied.
MODE_GITLINK = "160000"
