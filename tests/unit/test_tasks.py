"""The plan's Markdown task: task-list items counted and the first heading, outside fences."""

from __future__ import annotations

import pytest

from claude_e2b.tasks import TaskCount, count_tasks, first_heading


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("", TaskCount(0, 0)),
        ("- [ ] a\n- [x] b\n", TaskCount(1, 2)),
        ("* [X] a\n+ [ ] b\n", TaskCount(1, 2)),
        ("1. [ ] a\n2) [x] b\n10. [X] c\n", TaskCount(2, 3)),
        ("- [ ] a\n  - [x] nested\n    * [ ] deeper\n", TaskCount(1, 3)),
        ("```\n- [ ] code\n```\n- [ ] real\n", TaskCount(0, 1)),
        ("~~~md\n- [x] code\n~~~\n", TaskCount(0, 0)),
        ("````\n```\n- [ ] still code\n```\n````\n- [x] out\n", TaskCount(1, 1)),
        ("- [ ] a\n  ```\n  - [ ] fenced in a list\n  ```\n", TaskCount(0, 1)),
        ("```\n- [ ] unclosed fence\n", TaskCount(0, 0)),
        ("- [] no\n-[ ] no\n- [y] no\n[ ] no\ntext - [ ] no\n", TaskCount(0, 0)),
        ("- [ ]\n", TaskCount(0, 1)),
        ("- [x]tight is not a task\n", TaskCount(0, 0)),
    ],
)
def test_count_tasks(markdown: str, expected: TaskCount) -> None:
    """GitHub task-list items are counted; fenced code is not."""
    assert count_tasks(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("", None),
        ("text\n# Title\n## Later\n", "Title"),
        ("## The heading ##\n", "The heading"),
        ("   ### Indented three\n", "Indented three"),
        ("    # four spaces is code\n", None),
        ("#hashtag is not a heading\n", None),
        ("#\n#   \n# Real\n", "Real"),
        ("```\n# not this\n```\n# This\n", "This"),
        ("~~~\n# fenced\n", None),
        ("``` a`b\n# inline code, not a fence\n", "inline code, not a fence"),
    ],
)
def test_first_heading(markdown: str, expected: str | None) -> None:
    """The first non-empty ATX heading outside code fences is the heading."""
    assert first_heading(markdown) == expected
