"""The plan file guard: the agent may tick the plan's task boxes, not change its limits.

The plan's front matter (between the first two ``---`` lines) holds the run's
settings: budget, timeout, allowed and protected paths, the verify command. A
change that edits it, or deletes, renames or replaces the plan file, is refused;
an edit of the body alone (``- [ ]`` to ``- [x]``) is applied. The front matter is
split as ``plan.py`` splits it: a byte-order mark and CR line ends do not count.
"""

from __future__ import annotations

from pathlib import Path

from claude_e2b.sync.apply_paths import fold_path
from claude_e2b.sync.changes import Change
from claude_e2b.sync.formats import MODE_EXECUTABLE, MODE_FILE

_DELIMITER = "---"
_EDITABLE_MODES = (MODE_FILE, MODE_EXECUTABLE)


def plan_change_problem(change: Change, plan_path: str | None) -> str | None:
    """Say why ``change`` may not touch the plan file at all, or None."""
    if plan_path is None:
        return None
    key = fold_path(plan_path)
    if change.old_path is not None and fold_path(change.old_path) == key:
        return f"renames the plan file {plan_path!r}: it may only be edited"
    if fold_path(change.path) != key:
        return None
    if change.status == "deleted":
        return "deletes the plan file: it may only be edited"
    in_place = change.status == "modified" and change.path == plan_path
    if not in_place or change.mode not in _EDITABLE_MODES:
        return "replaces the plan file: it may only be edited in place, as a regular file"
    return None


def touches_plan(change: Change, plan_path: str | None) -> bool:
    """Whether ``change`` writes new content at the plan file's path."""
    return plan_path is not None and fold_path(change.path) == fold_path(plan_path)


def plan_content_problem(checkout: Path, plan_path: str, new_content: bytes) -> str | None:
    """Say why the new text of the plan file is refused (its front matter changed), or None."""
    try:
        before = (checkout / plan_path).read_bytes()
    except OSError as exc:
        return f"the plan file cannot be read on the runner to compare: {exc.strerror or exc}"
    if front_matter(before) != front_matter(new_content):
        return (
            "changes the plan's front matter (its settings and limits): only the body"
            " may change, e.g. ticking its task boxes"
        )
    return None


def front_matter(data: bytes) -> str | None:
    """The front matter's text, None when there is none; an unclosed one is all of the text."""
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[0].rstrip() != _DELIMITER:
        return None
    for index in range(1, len(lines)):
        if lines[index].rstrip() == _DELIMITER:
            return "\n".join(lines[1:index])
    return text
