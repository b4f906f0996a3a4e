"""The plan's Markdown task: its task-list items and its first heading.

Both are read outside fenced code blocks, the way GitHub renders them: a
``- [ ]`` inside a code sample is an example, not a step of the task.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

_TASK_ITEM: Final = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\[([ xX])\](?:[ \t]|$)")
_FENCE_OPEN: Final = re.compile(r"[ \t]*(`{3,}|~{3,})(.*)")
_FENCE_CLOSE: Final = re.compile(r"[ \t]*(`{3,}|~{3,})[ \t]*")
_HEADING: Final = re.compile(r" {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*")


@dataclass(frozen=True)
class TaskCount:
    """GitHub task-list items in a Markdown text: how many are ticked, out of how many."""

    done: int
    total: int


def count_tasks(markdown: str) -> TaskCount:
    """Count GitHub task-list items, nested and numbered ones too, outside code fences."""
    done = total = 0
    for line in _prose_lines(markdown):
        item = _TASK_ITEM.match(line)
        if item:
            total += 1
            done += item[1] in "xX"
    return TaskCount(done=done, total=total)


def first_heading(markdown: str) -> str | None:
    """Return the text of the first ATX heading (``# Title``) outside code fences, if any."""
    for line in _prose_lines(markdown):
        heading = _HEADING.fullmatch(line)
        if heading and heading[1].strip():
            return heading[1].strip()
    return None


def _prose_lines(markdown: str) -> Iterator[str]:
    """Yield the lines of a Markdown text that are not inside fenced code blocks."""
    fence: str | None = None
    for line in markdown.split("\n"):
        if fence is None:
            fence = _opening_fence(line)
            if fence is None:
                yield line
        elif _closes(line, fence):
            fence = None


def _opening_fence(line: str) -> str | None:
    opening = _FENCE_OPEN.fullmatch(line)
    # A backtick fence's info string may not hold backticks (that is inline code).
    if opening is None or (opening[1][0] == "`" and "`" in opening[2]):
        return None
    return opening[1]


def _closes(line: str, fence: str) -> bool:
    closing = _FENCE_CLOSE.fullmatch(line)
    return closing is not None and closing[1][0] == fence[0] and len(closing[1]) >= len(fence)
