"""The plan file: optional YAML front matter, then the Markdown task for Claude.

``parse_plan`` checks everything it can before giving up and raises one
``PlanError`` listing every problem as ``PATH:LINE: message``, LINE counted in the
plan file itself (front matter included) so that an editor can jump to it. A plan
file over 1 MiB, or one holding a NUL byte, is refused before anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

from claude_e2b.errors import PlanError
from claude_e2b.front_matter import Problems, read_front_matter
from claude_e2b.tasks import TaskCount, count_tasks, first_heading

_BOM: Final = "\ufeff"
_DELIMITER: Final = "---"
# Far more than Claude reads at once; a bigger file is not a plan (or is /dev/zero).
MAX_PLAN_BYTES: Final = 2**20
_NO_TASKS: Final = TaskCount(done=0, total=0)


@dataclass(frozen=True)
class Plan:
    """A valid plan: the task for Claude and the settings its front matter gave."""

    path: Path
    body: str
    body_line: int
    title: str | None = None
    branch: str | None = None
    base_branch: str | None = None
    model: str | None = None
    timeout_minutes: float | None = None
    warn_at_minutes: tuple[float, ...] | None = None
    max_turns: int | None = None
    budget_usd: float | None = None
    template: str | None = None
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    draft: bool | None = None
    allowed_paths: tuple[str, ...] = ()
    protected_paths: tuple[str, ...] | None = None
    network: tuple[str, ...] | None = None
    setup: tuple[str, ...] = ()
    verify: str | None = None
    # A read-only view keeps the plan immutable; it cannot be hashed, so hashing skips it.
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    secrets: str | None = None
    include_untracked: bool | None = None
    exclude: tuple[str, ...] = ()
    tasks: TaskCount = _NO_TASKS

    @property
    def display_title(self) -> str:
        """The title, else the body's first Markdown heading, else the file's stem."""
        return self.title or first_heading(self.body) or self.path.stem


def load_plan(path: Path) -> Plan:
    """Read and parse a plan file; raises PlanError, also when it cannot be read as UTF-8."""
    return parse_plan(_read_text(path), path)


def check_plan_file(path: Path) -> list[str]:
    """Return a plan file's problems as ``PATH:LINE: message`` lines; none when it is valid."""
    try:
        load_plan(path)
    except PlanError as exc:
        return exc.problems
    return []


def parse_plan(text: str, path: Path) -> Plan:
    """Parse a plan's text; raises PlanError listing every problem found, not just the first."""
    problems = Problems(path)
    text = _normalize(text)
    nul = text.find("\0")
    if nul >= 0:
        # A NUL means a binary file, and no NUL may reach git, a shell or an API.
        problems.add(text.count("\n", 0, nul) + 1, "holds a NUL character: a plan is text")
        raise problems.error()
    split = _split(text, problems)
    if split is None:
        # Nothing after an unclosed front matter can be told apart from it.
        raise problems.error()
    values = read_front_matter(split.front, problems)
    if not split.body.strip():
        problems.add(split.empty_body_line, _empty_body_message(split))
    problems.raise_if_any()
    return Plan(
        path=path,
        body=split.body,
        body_line=split.body_line,
        tasks=count_tasks(split.body),
        **values,
    )


# ---------------------------------------------------------------- reading the file


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as source:
            data = source.read(MAX_PLAN_BYTES + 1)
    except FileNotFoundError:
        raise PlanError([f"{path}:1: plan file not found"]) from None
    except IsADirectoryError:
        raise PlanError([f"{path}:1: is a directory, not a plan file"]) from None
    except OSError as exc:
        raise PlanError([f"{path}:1: cannot read the plan file: {exc.strerror or exc}"]) from exc
    if len(data) > MAX_PLAN_BYTES:
        size = f"{MAX_PLAN_BYTES // 2**20} MiB"
        raise PlanError([f"{path}:1: the plan file is too large (over {size}): a plan is a task"])
    return _decode(data, path)


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = f"not valid UTF-8 (byte {data[exc.start]:#04x}); save the plan as UTF-8"
        raise PlanError([f"{path}:{line}: {message}"]) from None


# ---------------------------------------------------------------- splitting


@dataclass(frozen=True)
class _Split:
    front: str | None  # the YAML text, None when the plan has no front matter
    body: str
    body_line: int

    @property
    def empty_body_line(self) -> int:
        # Point at the closing "---": the task belongs right after it.
        return self.body_line - 1 if self.front is not None else 1


def _normalize(text: str) -> str:
    return text.removeprefix(_BOM).replace("\r\n", "\n").replace("\r", "\n")


def _split(text: str, problems: Problems) -> _Split | None:
    lines = text.split("\n")
    if lines[0].rstrip() != _DELIMITER:
        return _Split(front=None, body=text, body_line=1)
    for index in range(1, len(lines)):
        if lines[index].rstrip() == _DELIMITER:
            front = "\n".join(lines[1:index])
            return _Split(front=front, body="\n".join(lines[index + 1 :]), body_line=index + 2)
    problems.add(1, "the front matter opened by '---' is never closed: end it with a '---' line")
    return None


def _empty_body_message(split: _Split) -> str:
    if split.front is None:
        return "the plan is empty: write the task for Claude in it"
    return "the plan has no task: write what Claude should do after the closing '---'"
