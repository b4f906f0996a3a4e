"""The plan file: the agent may tick its task boxes, not change its front matter."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_e2b.sync.apply import ApplyPolicy, ApplyResult, apply_changes
from claude_e2b.sync.apply_plan import front_matter
from claude_e2b.sync.changes import Change, Changeset
from tests.unit.test_apply import archive_of, change, reasons, regular, write

PLAN = "plans/task.md"
FRONT = "---\ntitle: Fix it\nbudget-usd: 1\nprotected-paths:\n  - deploy/**\n---\n"
BODY = "# Fix it\n\n- [ ] first\n- [ ] second\n"
POLICY = ApplyPolicy(plan_path=PLAN, uploaded=frozenset({PLAN, "src/a.py"}))


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    write(root, PLAN, (FRONT + BODY).encode())
    write(root, "src/a.py", b"a\n")
    return root


def edit(checkout: Path, tmp_path: Path, new_plan: str, plan_change: Change) -> ApplyResult:
    """Apply a plan change and an ordinary edit of src/a.py together."""
    members = [regular(PLAN, new_plan.encode()), regular("src/a.py", b"b\n")]
    archive = archive_of(tmp_path / "a.zst", members)
    changes = Changeset((plan_change, change("src/a.py", "modified")))
    return apply_changes(checkout, changes, archive, policy=POLICY)


def test_ticking_task_boxes_is_applied(checkout: Path, tmp_path: Path) -> None:
    """A body edit (a box ticked, a line added) passes."""
    new = FRONT + BODY.replace("- [ ] first", "- [x] first") + "\nDone: first.\n"
    result = edit(checkout, tmp_path, new, change(PLAN, "modified"))
    assert result.skipped == ()
    assert (checkout / PLAN).read_text() == new


@pytest.mark.parametrize(
    "new",
    [
        FRONT.replace("budget-usd: 1", "budget-usd: 1000") + BODY,
        FRONT.replace("  - deploy/**\n", "  - nothing/**\n") + BODY,
        FRONT.replace("---\n", "--- \n", 1).replace("title", "model: x\ntitle") + BODY,
        BODY,  # front matter removed
        FRONT.rstrip("-\n") + "\n" + BODY,  # front matter left unclosed
    ],
)
def test_front_matter_changes_are_refused(checkout: Path, tmp_path: Path, new: str) -> None:
    """Any change to the front matter is refused; the plan is kept, the ordinary edit applied."""
    result = edit(checkout, tmp_path, new, change(PLAN, "modified"))
    assert "changes the plan's front matter" in reasons(result)[PLAN]
    assert (checkout / PLAN).read_text() == FRONT + BODY
    assert (checkout / "src/a.py").read_bytes() == b"b\n"


def test_line_ends_and_bom_do_not_count_as_front_matter_changes(
    checkout: Path, tmp_path: Path
) -> None:
    """The same front matter with CRLF line ends and a BOM is the same front matter."""
    new = "\ufeff" + (FRONT + BODY.replace("[ ]", "[x]")).replace("\n", "\r\n")
    result = edit(checkout, tmp_path, new, change(PLAN, "modified"))
    assert result.skipped == ()


@pytest.mark.parametrize(
    ("plan_change", "reason"),
    [
        (change(PLAN, "deleted"), "deletes the plan file"),
        (change("plans/done.md", "renamed", old_path=PLAN), "renames the plan file"),
        (change(PLAN, "modified", mode="120000", link_target="x"), "replaces the plan file"),
        (change("Plans/Task.md", "modified"), "replaces the plan file"),
    ],
)
def test_deleting_renaming_or_replacing_the_plan_is_refused(
    checkout: Path, tmp_path: Path, plan_change: Change, reason: str
) -> None:
    """The plan file may only be edited in place; every other change to it is refused."""
    members = [regular("plans/done.md"), regular("src/a.py", b"b\n")]
    archive = archive_of(tmp_path / "a.zst", members)
    changes = Changeset((plan_change, change("src/a.py", "modified")))
    result = apply_changes(checkout, changes, archive, policy=POLICY)
    assert reason in reasons(result)[plan_change.path]
    assert (checkout / PLAN).read_text() == FRONT + BODY
    assert [c.path for c in result.applied] == ["src/a.py"]


def test_front_matter_split() -> None:
    """The front matter is the text between the first two --- lines, or None."""
    assert front_matter(b"---\na: 1\n---\nbody\n---\n") == "a: 1"
    assert front_matter(b"no front matter\n---\nx\n---\n") is None
    assert front_matter(b"---\r\na: 1\r\n---  \r\nbody") == "a: 1"
    assert front_matter(b"---\na: 1\n") == "---\na: 1\n"
