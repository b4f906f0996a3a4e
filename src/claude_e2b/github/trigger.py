"""Which run, if any, a workflow event asks for: GITHUB_EVENT_NAME + payload → a decision.

``read_trigger`` returns one of three values and never touches the network itself; the
one question it must ask GitHub (the commenter's permission) goes through the small
``Permissions`` protocol that the caller implements with PyGithub.

- ``Trigger``: start a run of ``plan`` (a validated, repository-relative POSIX path).
- ``Ignored``: the event is not for us (another comment, an edit, our own comment):
  exit 0 quietly.
- ``Refused``: a command for us that may not run: post ``reply`` on the issue, start nothing.

Events: ``workflow_dispatch`` and ``schedule`` take the plan from the action's ``plan``
input. ``issue_comment`` takes it from a command line in a newly *created* comment (an
edit never re-runs: the edited text may be someone else's, and the first run happened
already). Any other event is a workflow misconfiguration: ``ConfigError``.

The comment command (default ``/claude-e2b run``, the ``comment-command`` input):

- the first line that starts with the command's words (leading whitespace allowed,
  case-sensitive, whole words only) outside fenced code blocks; quoted Markdown (``>``)
  never matches, so quoting a command does not re-run it;
- then exactly one plan path: a bare word, or in double quotes if it contains spaces
  (``"plans/my plan.md"``: no escapes, nothing else is special). Extra words are refused
  rather than ignored, because someone writing ``--budget-usd 50`` after the path expects
  it to matter: settings belong in the plan's front matter. With no path the ``plan``
  input is used when the workflow sets one;
- nothing of the comment but the validated path leaves this module; no shell, no
  template sees the comment's text.

Who may start a run from a comment: a user whose permission, asked through the
collaborator-permission API, is write, maintain or admin. ``author_association`` in the
payload is never trusted: MEMBER covers read-only members of the owning organisation,
COLLABORATOR read-only collaborators, and it knows nothing of team grants. Bots are
refused unless ``allowed-bots`` names them; a listed bot skips the permission check,
because an app's bot user is usually not a collaborator at all and listing it is the
maintainer's explicit consent. Comments by our own identity (``own_logins``) or carrying
our hidden marker (every reply we write has one) never trigger us. Permission is asked
before the plan path is read, so a refused user gets no help with the command's form.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeVar

from claude_e2b.errors import ConfigError

EventName = Literal["workflow_dispatch", "schedule", "issue_comment"]
SUPPORTED_EVENTS: Final = ("workflow_dispatch", "schedule", "issue_comment")
DEFAULT_COMMAND: Final = "/claude-e2b run"
# Every comment we write starts with a hidden HTML comment beginning with this.
OWN_MARKER: Final = "<!-- claude-e2b"
REPLY_MARKER: Final = f"{OWN_MARKER}:refused -->"
WRITE_LEVELS: Final = frozenset({"admin", "maintain", "write"})
# The collaborator-permission API's role names; anything else is an organisation's custom role.
ROLE_NAMES: Final = frozenset({"admin", "maintain", "write", "triage", "read", "none"})
MAX_PATH_CHARS: Final = 1024
MAX_NAME_BYTES: Final = 255  # NAME_MAX of the common file systems
# Windows cannot check these out; backquote and angle brackets would also break the
# Markdown the path is shown in later.
_FORBIDDEN_CHARS: Final = frozenset('\\<>:"|?*`')
_FENCES: Final = ("```", "~~~")
_EXAMPLE_PLAN: Final = "plans/fix-bug.md"

_T = TypeVar("_T")


class Permissions(Protocol):
    """The one GitHub call the trigger needs; the caller implements it with PyGithub."""

    def permission_of(self, login: str) -> str:
        """The user's access to the repository: admin, maintain, write, triage, read or none.

        ``GET /repos/{owner}/{repo}/collaborators/{login}/permission``, reduced with
        ``access_level``; a user GitHub does not know is ``"none"``.
        """
        ...


@dataclass(frozen=True)
class Trigger:
    """Start a run of ``plan``, asked for by ``actor`` (None: a schedule has no sender)."""

    event: EventName
    plan: str
    actor: str | None
    issue_number: int | None = None
    comment_id: int | None = None
    is_pull_request: bool = False


@dataclass(frozen=True)
class Ignored:
    """The event is not for us: exit 0 without a word on the issue."""

    reason: str


@dataclass(frozen=True)
class Refused:
    """A command for us that may not run: post ``reply`` (Markdown) and start nothing."""

    reason: str
    reply: str
    issue_number: int
    comment_id: int


Decision = Trigger | Ignored | Refused


def read_trigger(
    event_name: str,
    payload: Mapping[str, Any],
    *,
    plan_input: str,
    command: str,
    allowed_bots: tuple[str, ...],
    own_logins: tuple[str, ...],
    permissions: Permissions,
) -> Decision:
    """What this event asks for.

    ``own_logins``: the token's identity when it is a bot or app (``github-actions[bot]``);
    with a person's token leave it empty (that person's commands must still work) and
    rely on the marker. Raises ``ConfigError`` for an unsupported event, a missing
    ``plan`` input, a bad ``command`` or a payload without a field we need.
    """
    if event_name == "workflow_dispatch":
        return _scheduled("workflow_dispatch", payload, plan_input)
    if event_name == "schedule":
        return _scheduled("schedule", payload, plan_input)
    if event_name == "issue_comment":
        request = _CommentRequest(payload, _command_words(command), plan_input)
        return request.decide(allowed_bots, own_logins, permissions)
    raise ConfigError(
        f"claude-e2b cannot be started by the {event_name or 'unnamed'} event; "
        f"it supports {', '.join(SUPPORTED_EVENTS)}",
        hint="trigger the workflow with `on: workflow_dispatch`, `on: schedule` "
        "or `on: issue_comment: types: [created]`",
    )


def _scheduled(event_name: EventName, payload: Mapping[str, Any], plan_input: str) -> Trigger:
    """A dispatched or scheduled run: the plan comes from the ``plan`` input."""
    if not plan_input.strip():
        raise ConfigError(
            f"a {event_name} run needs the `plan` input: the plan file to run",
            hint="add it to the step that uses the action:\n"
            "    with:\n      plan: plans/nightly.md",
        )
    try:
        plan = check_plan_path(plan_input.strip())
    except ValueError as exc:
        raise ConfigError(f"the `plan` input is not a usable plan path: {exc}") from exc
    actor = _optional(payload, "sender.login", str)
    return Trigger(event=event_name, plan=plan, actor=actor)


def _command_words(command: str) -> tuple[str, ...]:
    """The comment command as words; raises ConfigError if it cannot be typed as one line."""
    words = tuple(command.split())
    if not words or not all(word.isprintable() for word in words):
        raise ConfigError(
            f"the comment-command input {command!r} is not a usable command",
            hint="use words a comment can start with, e.g. `comment-command: /claude-e2b run`",
        )
    return words


class _CommentRequest:
    """One ``issue_comment`` event, read defensively, and the checks it must pass."""

    def __init__(self, payload: Mapping[str, Any], command: tuple[str, ...], default: str) -> None:
        self.payload = payload
        self.command = command
        self.default_plan = default.strip()
        self.action = _required(payload, "action", str)
        self.login = _required(payload, "comment.user.login", str)
        self.body = _optional(payload, "comment.body", str) or ""
        self.issue_number = _required(payload, "issue.number", int)
        self.comment_id = _required(payload, "comment.id", int)

    def decide(
        self, allowed_bots: tuple[str, ...], own_logins: tuple[str, ...], permissions: Permissions
    ) -> Decision:
        """Ignored, Refused or Trigger, asking for the permission only when it matters."""
        if self.action != "created":
            return Ignored(f"the comment was {self.action}; only new comments start runs")
        if _same_login(self.login, own_logins) or OWN_MARKER in self.body:
            return Ignored("our own comment")
        argument = find_command(self.body, self.command)
        if argument is None:
            return Ignored("the comment has no command for claude-e2b")
        return self._authorise(allowed_bots, permissions) or self._run(argument)

    def _authorise(self, allowed_bots: tuple[str, ...], permissions: Permissions) -> Refused | None:
        """A refusal, or None when the commenter may start a run."""
        if _is_bot(self.login, _optional(self.payload, "comment.user.type", str)):
            if _same_login(self.login, allowed_bots):
                return None
            return self._refuse(
                f"{self.login} is a bot not listed in allowed-bots",
                f"bots may not start claude-e2b runs; a maintainer can allow {self.login} "
                "by listing it in the `allowed-bots` input of the workflow.",
            )
        level = permissions.permission_of(self.login)
        if level in WRITE_LEVELS:
            return None
        level = level if level in ROLE_NAMES else "unknown"
        return self._refuse(
            f"{self.login} has {level} permission; write, maintain or admin is needed",
            f"only users with write access can start claude-e2b runs (your permission: {level}).",
        )

    def _run(self, argument: str) -> Trigger | Refused:
        """The Trigger for the command's plan path, or a refusal explaining the form."""
        try:
            given = parse_argument(argument)
            plan = check_plan_path(given) if given is not None else self._default()
        except ValueError as exc:
            return self._refuse(f"bad plan path in the command: {exc}", self._usage(str(exc)))
        return Trigger(
            event="issue_comment",
            plan=plan,
            actor=self.login,
            issue_number=self.issue_number,
            comment_id=self.comment_id,
            is_pull_request=_lookup(self.payload, "issue.pull_request") is not None,
        )

    def _default(self) -> str:
        """The ``plan`` input, for a command without a path; ValueError without one."""
        if not self.default_plan:
            raise ValueError("the command names no plan file")
        try:
            return check_plan_path(self.default_plan)
        except ValueError as exc:  # the workflow's fault, not the commenter's
            raise ConfigError(f"the `plan` input is not a usable plan path: {exc}") from exc

    def _usage(self, problem: str) -> str:
        command = " ".join(self.command)
        return (
            f"{problem}. Write the command as `{command} {_EXAMPLE_PLAN}`: one path "
            "relative to the repository root, in double quotes if it contains spaces; "
            "settings go in the plan's front matter."
        )

    def _refuse(self, reason: str, message: str) -> Refused:
        reply = f"{REPLY_MARKER}\n@{self.login}, {message}\n"
        return Refused(reason, reply, self.issue_number, self.comment_id)


def find_command(body: str, command: tuple[str, ...]) -> str | None:
    """The text after the first line starting with ``command``'s words, or None."""
    for line in _lines_outside_fences(body):
        rest = _after_words(line.strip(), command)
        if rest is not None:
            return rest
    return None


def _lines_outside_fences(body: str) -> Iterator[str]:
    """The body's lines that are not inside ``` or ~~~ fenced code blocks (or their fences)."""
    fenced = False
    for line in body.splitlines():
        if line.lstrip().startswith(_FENCES):
            fenced = not fenced
        elif not fenced:
            yield line


def _after_words(line: str, words: tuple[str, ...]) -> str | None:
    """The rest of ``line`` after ``words`` (whole words, any whitespace between), or None."""
    rest = line
    for word in words:
        if not rest.startswith(word):
            return None
        rest = rest[len(word) :]
        if rest and not rest[0].isspace():
            return None
        rest = rest.lstrip()
    return rest


def parse_argument(text: str) -> str | None:
    """The single plan path in ``text`` (bare or in double quotes), None if empty.

    Raises ValueError for an unclosed quote, single quotes or extra words.
    """
    text = text.strip()
    if not text:
        return None
    if text.startswith("'"):
        raise ValueError("single quotes are not understood; use double quotes")
    if text.startswith('"'):
        path, extra = _quoted(text)
    else:
        path, extra = _split_first_word(text)
    if extra.strip():
        raise ValueError("only one plan path may follow the command")
    return path


def _split_first_word(text: str) -> tuple[str, str]:
    """The first word and the rest, split at the first run of any whitespace."""
    words = text.split(maxsplit=1)
    return words[0], words[1] if len(words) > 1 else ""


def _quoted(text: str) -> tuple[str, str]:
    """``"path" rest`` → (path, rest); ValueError when the quote is not closed properly."""
    end = text.find('"', 1)
    if end < 0:
        raise ValueError("the opening double quote is never closed")
    after = text[end + 1 :]
    if after and not after[0].isspace():
        raise ValueError("the closing double quote must end the path")
    return text[1:end], after


def check_plan_path(text: str) -> str:
    """``text`` as a normalised POSIX path inside the repository.

    Raises ValueError saying what is wrong (without repeating the text).
    """
    parts = [part for part in text.split("/") if part not in {"", "."}]
    problem = next(_path_problems(text), None) or next(_component_problems(parts), None)
    if problem is not None:
        raise ValueError(problem)
    return posixpath.join(*parts)


def _path_problems(text: str) -> Iterator[str]:
    """Problems of the path as a whole, worst first."""
    if not text.strip():
        yield "the plan path is empty"
    if len(text) > MAX_PATH_CHARS:
        yield f"the plan path is longer than {MAX_PATH_CHARS} characters"
    if not text.isprintable():
        yield "the plan path contains control or invisible characters"
    if text != text.strip():
        yield "the plan path starts or ends with a space"
    if text.startswith("/"):
        yield "the plan path must be relative to the repository root, not absolute"
    if text.startswith(("-", "~")):
        yield "the plan path may not start with '-' or '~'"
    if text.endswith("/"):
        yield "the plan path names a directory; it must name the plan file"
    if any(char in _FORBIDDEN_CHARS for char in text):
        yield "the plan path may not contain backslashes, double quotes, backquotes or < > : | ? *"


def _component_problems(parts: list[str]) -> Iterator[str]:
    """Problems of the path's components."""
    if not parts:
        yield "the plan path names the repository root, not a plan file"
    if parts and parts[0].startswith(("-", "~")):  # also after "./" is dropped
        yield "the plan path may not start with '-' or '~'"
    if ".." in parts:
        yield "the plan path may not contain '..'"
    if ".git" in parts:
        yield "the plan path may not point into .git"
    if any(len(part.encode()) > MAX_NAME_BYTES for part in parts):
        yield f"a name in the plan path is longer than {MAX_NAME_BYTES} bytes"
    if any(part != part.strip() for part in parts):
        yield "a name in the plan path starts or ends with a space"


def access_level(response: Mapping[str, Any]) -> str:
    """The level in a collaborator-permission response: ``role_name`` when it is a base role.

    ``permission`` alone reports maintain as write and triage as read; ``role_name`` holds
    the exact role, or an organisation's custom role, whose base level is ``permission``.
    """
    role = response.get("role_name")
    if isinstance(role, str) and role in ROLE_NAMES:
        return role
    permission = response.get("permission")
    return permission if isinstance(permission, str) and permission in ROLE_NAMES else "none"


def default_branch_of(payload: Mapping[str, Any]) -> str | None:
    """The repository's default branch named in the payload, if any."""
    return _optional(payload, "repository.default_branch", str)


def _is_bot(login: str, user_type: str | None) -> bool:
    return user_type == "Bot" or login.lower().endswith("[bot]")


def _same_login(login: str, listed: tuple[str, ...]) -> bool:
    """GitHub logins are case-insensitive; ``[bot]`` is optional in our lists."""
    key = login.lower().removesuffix("[bot]")
    return any(key == other.strip().lower().removesuffix("[bot]") for other in listed)


def _lookup(payload: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``a.b.c``, None when a step is missing, null or not an object."""
    value: Any = payload
    for key in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _optional(payload: Mapping[str, Any], dotted: str, kind: type[_T]) -> _T | None:
    """The value at ``a.b.c`` when present; ConfigError when it is not a ``kind``."""
    value = _lookup(payload, dotted)
    if value is None:
        return None
    # JSON true is a Python int too; a boolean is never a number or a name here.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _bad_field(dotted, kind)
    return value


def _required(payload: Mapping[str, Any], dotted: str, kind: type[_T]) -> _T:
    value = _optional(payload, dotted, kind)
    if value is None:
        raise ConfigError(
            f"the event payload has no {dotted}",
            hint="GITHUB_EVENT_PATH must be the event file the runner wrote for this job",
        )
    return value


def _bad_field(dotted: str, kind: type) -> ConfigError:
    name = {str: "string", int: "number"}.get(kind, kind.__name__)
    return ConfigError(f"the event payload's {dotted} is not a {name}")
