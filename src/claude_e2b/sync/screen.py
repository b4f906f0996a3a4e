"""The secret scan's verdict on what goes up: exclude the files, fail the run, or warn.

Hits are reported as ``path:line: rule``; the matched value never leaves the scanner.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from claude_e2b.sync.secrets import SecretHit, SecretScanner, scan_tree
from claude_e2b.sync.select import Excluded, Selection

SecretsPolicy = Literal["exclude", "fail", "warn"]


@dataclass(frozen=True)
class Screening:
    """The selection to upload after the scan, and what the scan found."""

    selection: Selection
    hits: tuple[SecretHit, ...]
    blocked: bool

    def lines(self) -> list[str]:
        """One ``path:line: rule`` line per hit."""
        return [str(hit) for hit in self.hits]


def screen(selection: Selection, scanner: SecretScanner, policy: SecretsPolicy) -> Screening:
    """Scan every selected regular file and apply the plan's secrets policy.

    Nothing is stat-ed again: select's one ``lstat`` per file said which files are
    symlinks (they go up as links, their targets unscanned), and the scan opens the
    others without following a final symlink, on several threads.
    """
    paths = [f.path for f in selection.files if not f.is_symlink]
    hits = tuple(scan_tree(scanner, selection.root, paths))
    if not hits or policy == "warn":
        return Screening(selection, hits, blocked=False)
    if policy == "fail":
        return Screening(selection, hits, blocked=True)
    return Screening(_without(selection, hits), hits, blocked=False)


def _without(selection: Selection, hits: tuple[SecretHit, ...]) -> Selection:
    first: dict[str, SecretHit] = {}
    for hit in hits:
        first.setdefault(hit.path, hit)
    excluded = tuple(
        Excluded(path, f"secret found: {hit.rule} at line {hit.line}")
        for path, hit in first.items()
    )
    return replace(
        selection,
        files=tuple(f for f in selection.files if f.path not in first),
        excluded=selection.excluded + excluded,
    )


@dataclass(frozen=True)
class ContentCheck:
    """Callable form of the scanner for ApplyPolicy.secret_check."""

    scanner: SecretScanner

    def __call__(self, data: bytes, path: str) -> list[str]:
        """Rule names hit in ``data`` (never the values)."""
        return sorted({hit.rule for hit in self.scanner.scan_bytes(data, path)})
