"""What both directions of the sync agree on: git's file modes, the tar's compression, transfers."""

from __future__ import annotations

from typing import Literal

# How a tar travels between runner and sandbox: zstd where the sandbox has it, else gzip.
Codec = Literal["zstd", "gzip"]
CODECS: dict[str, Codec] = {"zstd": "zstd", "gzip": "gzip"}

# How the clean tracked files travel (see upload): as the runner's packs ("packs"),
# repacked uncompressed through zstd ("zpacks"), in the tar with the rest ("tar"),
# or "auto": packs, switching to zpacks where the link is the bottleneck (linkfit).
Transfer = Literal["auto", "packs", "zpacks", "tar"]
TRANSFERS: tuple[Transfer, ...] = ("auto", "packs", "zpacks", "tar")

# The modes of git's tree entries (`ls-files --stage`, `diff --raw`).
MODE_FILE = "100644"
MODE_EXECUTABLE = "100755"
MODE_SYMLINK = "120000"
# A nested repository that `git add -A` recorded as a gitlink: it has no content
# of its own in this repository, so it is reported but never packed or applied.
MODE_GITLINK = "160000"
