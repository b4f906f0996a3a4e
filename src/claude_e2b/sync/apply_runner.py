"""What the runner's checkout holds that the sandbox never saw, and must therefore keep.

The pull request shows exactly the changes git sees between the uploaded files
and the applied ones. A change the sandbox could not have made honestly would
touch something the pull request does not show: the runner's own files that
were never uploaded (``.env`` and other always-excluded names, untracked files,
ignored build output, a virtualenv that later steps run). :class:`RunnerView`
says why such a change is refused, looking at the checkout as it was before
anything is applied; ``apply_ignore.py`` adds what git ignores there.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from claude_e2b.sync.apply_paths import ancestors, fold_component, name_problem
from claude_e2b.sync.changes import Change

_NOT_UPLOADED = "was never uploaded (excluded or untracked)"
FOLDED = "where case, trailing dots or invisible characters are ignored"


@dataclass
class RunnerView:
    """The checkout before the apply, against the files that went up to the sandbox.

    ``uploaded`` None means unknown: only the name and same-file rules apply then.
    ``removed`` holds the paths the changeset deletes or renames away.
    """

    checkout: Path
    uploaded: frozenset[str] | None
    removed: frozenset[str] = frozenset()
    _uploaded_dirs: frozenset[str] = field(init=False)
    _listings: dict[str, dict[str, list[str]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        paths = self.uploaded or frozenset()
        self._uploaded_dirs = frozenset(d for p in paths for d in ancestors(p))

    def was_uploaded(self, path: str) -> bool:
        """Whether ``path`` is known to have gone up (and so came from the baseline)."""
        return self.uploaded is not None and path in self.uploaded

    def change_problem(self, change: Change) -> str | None:
        """Say why ``change`` would touch what the sandbox never saw, or None."""
        old = change.path if change.status == "deleted" else change.old_path
        if old is not None and self.uploaded is not None and old not in self.uploaded:
            verb = "deletes" if change.status == "deleted" else f"renames {old!r}, which"
            return f"{verb} {_NOT_UPLOADED}: the runner's own file is kept"
        if not change.has_content or self.was_uploaded(change.path):
            return None
        return name_problem(change.path) or self._new_path_problem(change)

    def _new_path_problem(self, change: Change) -> str | None:
        if self.uploaded is not None:
            problem = self._unseen_problem(change)
            if problem is not None:
                return problem
        return self._same_file_problem(change.path)

    def _unseen_problem(self, change: Change) -> str | None:
        deepest, exists = self._existing(change.path)
        if exists and change.path not in self._uploaded_dirs:
            return f"exists on the runner but {_NOT_UPLOADED}: the runner's file is kept"
        if change.status == "modified":
            return f"modified, but it {_NOT_UPLOADED}"
        if deepest and deepest not in self._uploaded_dirs:
            return (
                f"inside {deepest + '/'!r}, which exists on the runner but none of it was uploaded"
            )
        return None

    def _existing(self, path: str) -> tuple[str, bool]:
        """The deepest real directory above ``path`` ("" for the root); whether ``path`` exists.

        Never follows a symlink: a link or a file above ``path`` ends the walk.
        """
        deepest = ""
        for parent in [*ancestors(path), path]:
            try:
                mode = os.lstat(self.checkout / parent).st_mode
            except OSError:
                return deepest, False
            if parent == path:
                return deepest, True
            if not stat.S_ISDIR(mode):
                return deepest, False
            deepest = parent
        return deepest, False

    def _same_file_problem(self, path: str) -> str | None:
        """Refuse a new name that folds onto another name already on the runner."""
        deepest, _ = self._existing(path)
        real_dirs = ["", *ancestors(deepest), deepest] if deepest else [""]
        for parent, part in zip(real_dirs, path.split("/"), strict=False):
            others = self._listing(parent).get(fold_component(part), [])
            clash = next(
                (o for o in others if o != part and _join(parent, o) not in self.removed), None
            )
            if clash is not None:
                return f"the same file as {_join(parent, clash)!r} on the runner, {FOLDED}"
        return None

    def _listing(self, directory: str) -> dict[str, list[str]]:
        """The names in a real directory of the checkout, by folded name (cached)."""
        known = self._listings.get(directory)
        if known is None:
            known = {}
            for name in _names_in(self.checkout, directory):
                known.setdefault(fold_component(name), []).append(name)
            self._listings[directory] = known
        return known


def _names_in(checkout: Path, directory: str) -> list[str]:
    try:
        return [entry.name for entry in (checkout / directory).iterdir()]
    except OSError:
        return []  # gone meanwhile: nothing on the runner to clash with


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name
