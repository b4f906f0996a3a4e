"""GITHUB_EVENT_NAME + payload → Trigger, Ignored or Refused: commands, permissions, paths."""

from __future__ import annotations

import copy
import posixpath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_e2b.errors import EXIT_BAD_INPUT, ConfigError
from claude_e2b.github.trigger import (
    DEFAULT_COMMAND,
    OWN_MARKER,
    Ignored,
    Permissions,
    Refused,
    Trigger,
    access_level,
    check_plan_path,
    default_branch_of,
    read_trigger,
)

API = "https://api.github.com"
SITE = "https://github.com"
REPO = "octo-org/hello-world"


class FakePermissions(Permissions):
    """Answers from a table (default read), recording every login asked about."""

    def __init__(self, levels: dict[str, str] | None = None) -> None:
        self.levels = levels or {}
        self.calls: list[str] = []

    def permission_of(self, login: str) -> str:
        self.calls.append(login)
        return self.levels.get(login, "read")


# --- payloads shaped like GitHub's webhook payloads (trimmed of URLs nobody reads) ---


def user(login: str, user_type: str = "User", uid: int = 583231) -> dict[str, Any]:
    return {
        "login": login,
        "id": uid,
        "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "url": f"{API}/users/{login}",
        "html_url": f"{SITE}/{login}",
        "type": user_type,
        "user_view_type": "public",
        "site_admin": False,
    }


def repository() -> dict[str, Any]:
    return {
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": "hello-world",
        "full_name": REPO,
        "private": False,
        "owner": user("octo-org", "Organization", 6811672),
        "html_url": f"{SITE}/{REPO}",
        "url": f"{API}/repos/{REPO}",
        "default_branch": "main",
        "visibility": "public",
    }


def comment_event(
    body: str,
    *,
    login: str = "alice",
    user_type: str = "User",
    action: str = "created",
    on_pull_request: bool = False,
    association: str = "COLLABORATOR",
) -> dict[str, Any]:
    """An ``issue_comment`` payload: comment 1234567 on issue (or PR) 42."""
    issue: dict[str, Any] = {
        "url": f"{API}/repos/{REPO}/issues/42",
        "html_url": f"{SITE}/{REPO}/{'pull' if on_pull_request else 'issues'}/42",
        "id": 2087349751,
        "node_id": "I_kwDOABCD5c58ad9n",
        "number": 42,
        "title": "Fix the flaky test",
        "user": user("carol", uid=1001),
        "labels": [],
        "state": "open",
        "locked": False,
        "comments": 3,
        "author_association": "NONE",
        "body": "The test fails one run in ten.",
    }
    if on_pull_request:
        issue["pull_request"] = {
            "url": f"{API}/repos/{REPO}/pulls/42",
            "html_url": f"{SITE}/{REPO}/pull/42",
            "diff_url": f"{SITE}/{REPO}/pull/42.diff",
            "patch_url": f"{SITE}/{REPO}/pull/42.patch",
            "merged_at": None,
        }
    commenter = user(login, user_type, uid=2002)
    payload: dict[str, Any] = {
        "action": action,
        "issue": issue,
        "comment": {
            "url": f"{API}/repos/{REPO}/issues/comments/1234567",
            "html_url": f"{SITE}/{REPO}/issues/42#issuecomment-1234567",
            "issue_url": f"{API}/repos/{REPO}/issues/42",
            "id": 1234567,
            "node_id": "IC_kwDOABCD5c5JZP2H",
            "user": commenter,
            "created_at": "2025-05-01T10:00:00Z",
            "updated_at": "2025-05-01T10:00:00Z",
            "author_association": association,
            "body": body,
            "reactions": {"url": f"{API}/repos/{REPO}/issues/comments/1234567/reactions"},
            "performed_via_github_app": None,
        },
        "repository": repository(),
        "organization": {"login": "octo-org", "id": 6811672},
        "sender": commenter,
    }
    if action == "edited":
        payload["changes"] = {"body": {"from": "an earlier text"}}
    return payload


def dispatch_event(inputs: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "inputs": inputs or {},
        "ref": "refs/heads/main",
        "repository": repository(),
        "organization": {"login": "octo-org", "id": 6811672},
        "sender": user("alice"),
        "workflow": ".github/workflows/claude.yml",
    }


SCHEDULE_EVENT: dict[str, Any] = {"schedule": "17 3 * * *"}


def decide(
    payload: dict[str, Any],
    permissions: FakePermissions | None = None,
    *,
    event: str = "issue_comment",
    plan_input: str = "",
    command: str = DEFAULT_COMMAND,
    allowed_bots: tuple[str, ...] = (),
    own_logins: tuple[str, ...] = ("github-actions[bot]",),
) -> Trigger | Ignored | Refused:
    return read_trigger(
        event,
        payload,
        plan_input=plan_input,
        command=command,
        allowed_bots=allowed_bots,
        own_logins=own_logins,
        permissions=permissions or FakePermissions({"alice": "write"}),
    )


# --- workflow_dispatch and schedule ---


def test_dispatch_runs_the_plan_input_for_the_sender() -> None:
    """workflow_dispatch runs the `plan` input, normalised, on behalf of the sender."""
    got = decide(dispatch_event(), event="workflow_dispatch", plan_input=" ./plans//nightly.md ")
    assert got == Trigger(event="workflow_dispatch", plan="plans/nightly.md", actor="alice")


def test_schedule_runs_the_plan_input_without_an_actor() -> None:
    """A scheduled run has no sender; the plan is the input."""
    got = decide(SCHEDULE_EVENT, event="schedule", plan_input="plans/nightly.md")
    assert got == Trigger(event="schedule", plan="plans/nightly.md", actor=None)


@pytest.mark.parametrize("event", ["workflow_dispatch", "schedule"])
def test_missing_plan_input_is_a_config_error_with_the_yaml_to_add(event: str) -> None:
    """Without the `plan` input the error shows the `with: plan:` lines to paste."""
    with pytest.raises(ConfigError) as caught:
        decide(dispatch_event({"plan": "plans/x.md"}), event=event, plan_input="  ")
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert "`plan` input" in caught.value.message
    assert caught.value.hint is not None
    assert "with:\n      plan: plans/nightly.md" in caught.value.hint


@pytest.mark.parametrize("plan", ["/home/runner/work/plans/x.md", "../plans/x.md", "plans/"])
def test_plan_input_outside_the_repository_is_a_config_error(plan: str) -> None:
    """The `plan` input must be a path inside the repository too."""
    with pytest.raises(ConfigError, match="`plan` input is not a usable plan path"):
        decide(dispatch_event(), event="workflow_dispatch", plan_input=plan)


@pytest.mark.parametrize("event", ["push", "pull_request", "pull_request_target", "issues", ""])
def test_other_events_are_a_config_error_naming_the_supported_ones(event: str) -> None:
    """A workflow started by another event is misconfigured; the error lists what works."""
    permissions = FakePermissions()
    with pytest.raises(ConfigError) as caught:
        decide(dispatch_event(), permissions, event=event, plan_input="plans/x.md")
    assert "workflow_dispatch, schedule, issue_comment" in caught.value.message
    assert permissions.calls == []


# --- issue_comment: the command ---


def test_command_on_an_issue_runs_for_a_writer() -> None:
    """A writer's command runs the named plan, remembering the issue and the comment."""
    permissions = FakePermissions({"alice": "write"})
    got = decide(comment_event("/claude-e2b run plans/fix-bug.md"), permissions)
    assert got == Trigger(
        event="issue_comment",
        plan="plans/fix-bug.md",
        actor="alice",
        issue_number=42,
        comment_id=1234567,
        is_pull_request=False,
    )
    assert permissions.calls == ["alice"]


def test_command_on_a_pull_request_is_marked_as_such() -> None:
    """A comment on a PR (issue.pull_request present) gives is_pull_request."""
    got = decide(comment_event("/claude-e2b run plans/a.md", on_pull_request=True))
    assert isinstance(got, Trigger)
    assert got.is_pull_request


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_edited_or_deleted_comments_are_ignored_without_asking(action: str) -> None:
    """Only new comments start runs; an edit never re-runs, and no API call is made."""
    permissions = FakePermissions({"alice": "admin"})
    got = decide(comment_event("/claude-e2b run plans/a.md", action=action), permissions)
    assert isinstance(got, Ignored)
    assert action in got.reason
    assert permissions.calls == []


@pytest.mark.parametrize(
    "body",
    [
        "Looks good to me!",
        "Try `/claude-e2b run plans/a.md` later",
        "> /claude-e2b run plans/a.md\nquoting the earlier command",
        "usage:\n```\n/claude-e2b run plans/a.md\n```",
        "~~~text\n/claude-e2b run plans/a.md\n~~~",
        "/claude-e2b runner plans/a.md",
        "/claude-e2b-x run plans/a.md",
        "/Claude-E2B run plans/a.md",
        "/claude-e2b",
        "",
    ],
)
def test_comments_without_a_command_line_are_ignored_without_asking(body: str) -> None:
    """No line starting with the command's whole words (outside code fences): not for us."""
    permissions = FakePermissions({"alice": "admin"})
    got = decide(comment_event(body), permissions)
    assert got == Ignored("the comment has no command for claude-e2b")
    assert permissions.calls == []


@pytest.mark.parametrize(
    "body",
    [
        "/claude-e2b run plans/a.md",
        "   /claude-e2b run plans/a.md   ",
        "/claude-e2b \t run\tplans/a.md",
        "Thanks!\r\n\r\n/claude-e2b run plans/a.md\r\n",
        "```\ncode\n```\n/claude-e2b run plans/a.md",
        "/claude-e2b run plans/a.md\n/claude-e2b run plans/b.md",
    ],
)
def test_the_first_command_line_is_found_anywhere_in_the_comment(body: str) -> None:
    """Leading whitespace, any whitespace between words, CRLF; the first command line wins."""
    got = decide(comment_event(body))
    assert isinstance(got, Trigger)
    assert got.plan == "plans/a.md"


def test_a_quoted_path_may_contain_spaces() -> None:
    """Double quotes keep a path with spaces together; they are not part of it."""
    got = decide(comment_event('/claude-e2b run "plans/my plan.md"  '))
    assert isinstance(got, Trigger)
    assert got.plan == "plans/my plan.md"


def test_shell_syntax_in_the_path_is_kept_as_literal_data() -> None:
    """Nothing is expanded: `$(...)` is part of a file name like any other character."""
    got = decide(comment_event("/claude-e2b run plans/$(id)&&x.md"))
    assert isinstance(got, Trigger)
    assert got.plan == "plans/$(id)&&x.md"


def test_a_configured_command_replaces_the_default() -> None:
    """comment-command changes the words looked for; the default then means nothing."""
    body = "/claude-e2b run plans/a.md\n@helper go plans/b.md"
    got = decide(comment_event(body), command="@helper  go")
    assert isinstance(got, Trigger)
    assert got.plan == "plans/b.md"


@pytest.mark.parametrize("command", ["", "   ", "/run\x07"])
def test_an_unusable_command_input_is_a_config_error(command: str) -> None:
    """An empty comment-command or one with control characters is the workflow's mistake."""
    with pytest.raises(ConfigError, match="comment-command"):
        decide(comment_event("/claude-e2b run plans/a.md"), command=command)


def test_a_command_without_a_path_runs_the_plan_input() -> None:
    """With no path after the command, the workflow's `plan` input is the plan."""
    got = decide(comment_event("/claude-e2b run"), plan_input="plans/default.md")
    assert isinstance(got, Trigger)
    assert got.plan == "plans/default.md"


def test_a_command_without_a_path_or_plan_input_is_refused_with_the_form() -> None:
    """No path anywhere: the reply shows the expected command."""
    got = decide(comment_event("/claude-e2b run"))
    assert isinstance(got, Refused)
    assert "the command names no plan file" in got.reply
    assert "`/claude-e2b run plans/fix-bug.md`" in got.reply


def test_a_bad_plan_input_behind_a_bare_command_is_a_config_error() -> None:
    """A bad default plan is the workflow's fault, not the commenter's."""
    with pytest.raises(ConfigError, match="`plan` input"):
        decide(comment_event("/claude-e2b run"), plan_input="/abs/plan.md")


@pytest.mark.parametrize(
    ("argument", "problem"),
    [
        ("../secrets.md", "'..'"),
        ("plans/../../etc/passwd", "'..'"),
        ("/etc/passwd", "relative to the repository root"),
        ("plans\\x.md", "backslashes"),
        ("-rf", "may not start with '-'"),
        ("~/plan.md", "may not start with '-' or '~'"),
        ("plans/", "names a directory"),
        (".", "repository root"),
        (".git/config", ".git"),
        ("plans/\u202egnp.md", "control or invisible"),
        ('"plans/a\u00a0b.md"', "control or invisible"),
        ("plans/a\u00a0b.md", "only one plan path"),
        ("'plans/a.md'", "single quotes"),
        ('"plans/a.md', "never closed"),
        ('"plans/a.md"x', "closing double quote"),
        ('"plans/a.md" extra', "only one plan path"),
        ("plans/a.md --budget-usd 50", "only one plan path"),
        ('" plans/a.md"', "starts or ends with a space"),
        ("plans/" + "n" * 256 + ".md", "longer than 255 bytes"),
        ("p/" * 600 + "a.md", "longer than 1024 characters"),
    ],
)
def test_bad_plan_paths_are_refused_with_the_expected_form(argument: str, problem: str) -> None:
    """A writer's malformed path gets a reply saying what is wrong and how to write it."""
    got = decide(comment_event(f"/claude-e2b run {argument}"))
    assert isinstance(got, Refused)
    assert problem in got.reason
    assert got.reply.startswith(f"{OWN_MARKER}")
    assert f"@alice, {got.reason.removeprefix('bad plan path in the command: ')}" in got.reply
    assert "`/claude-e2b run plans/fix-bug.md`" in got.reply
    assert (got.issue_number, got.comment_id) == (42, 1234567)


def test_the_reply_never_repeats_the_comment_text() -> None:
    """What the commenter wrote is not echoed back into our comment."""
    got = decide(comment_event("/claude-e2b run <img src=x onerror=alert(1)>"))
    assert isinstance(got, Refused)
    assert "<img" not in got.reply
    assert "onerror" not in got.reply


# --- issue_comment: who may ---


@pytest.mark.parametrize("level", ["read", "triage", "none"])
def test_users_without_write_access_are_refused_with_a_reply(level: str) -> None:
    """read, triage and none are refused; the reply names the user and their permission."""
    permissions = FakePermissions({"alice": level})
    got = decide(comment_event("/claude-e2b run plans/a.md"), permissions)
    assert isinstance(got, Refused)
    assert got.reply.splitlines()[1] == (
        "@alice, only users with write access can start claude-e2b runs "
        f"(your permission: {level})."
    )
    assert permissions.calls == ["alice"]


@pytest.mark.parametrize("level", ["write", "maintain", "admin"])
def test_write_maintain_and_admin_may_run(level: str) -> None:
    """The three levels with push access start runs."""
    got = decide(comment_event("/claude-e2b run plans/a.md"), FakePermissions({"alice": level}))
    assert isinstance(got, Trigger)


def test_an_unexpected_permission_answer_is_refused_and_not_echoed() -> None:
    """An answer outside GitHub's levels is no permission; the reply says unknown."""
    got = decide(comment_event("/claude-e2b run plans/a.md"), FakePermissions({"alice": "push"}))
    assert isinstance(got, Refused)
    assert "(your permission: unknown)" in got.reply


@pytest.mark.parametrize("association", ["OWNER", "MEMBER", "COLLABORATOR"])
def test_author_association_never_grants_a_run(association: str) -> None:
    """OWNER/MEMBER in the payload mean nothing when the API says read."""
    payload = comment_event("/claude-e2b run plans/a.md", association=association)
    got = decide(payload, FakePermissions({"alice": "read"}))
    assert isinstance(got, Refused)


def test_a_contributor_with_write_access_runs() -> None:
    """CONTRIBUTOR in the payload does not stop a user the API says can write."""
    payload = comment_event("/claude-e2b run plans/a.md", association="CONTRIBUTOR")
    assert isinstance(decide(payload, FakePermissions({"alice": "write"})), Trigger)


def test_an_unauthorised_user_gets_no_help_with_the_form() -> None:
    """Permission is checked before the path: a reader with a bad path hears only no."""
    got = decide(comment_event("/claude-e2b run ../x"), FakePermissions({"alice": "read"}))
    assert isinstance(got, Refused)
    assert "write access" in got.reply
    assert "plans/fix-bug.md" not in got.reply


@pytest.mark.parametrize(
    ("login", "user_type"),
    [("renovate[bot]", "Bot"), ("dependabot[bot]", "User"), ("legacy-bot", "Bot")],
)
def test_bots_are_refused_without_asking_for_permission(login: str, user_type: str) -> None:
    """Type Bot or a `[bot]` login is refused unless allowed; the reply says how to allow it."""
    permissions = FakePermissions({login: "admin"})
    payload = comment_event("/claude-e2b run plans/a.md", login=login, user_type=user_type)
    got = decide(payload, permissions, allowed_bots=("someone-else",))
    assert isinstance(got, Refused)
    assert "bots may not start claude-e2b runs" in got.reply
    assert "`allowed-bots`" in got.reply
    assert permissions.calls == []


@pytest.mark.parametrize("listed", ["renovate", "renovate[bot]", "Renovate[BOT]", " RENOVATE "])
def test_allowed_bots_run_without_a_permission_check(listed: str) -> None:
    """A listed bot (with or without [bot], any case) runs; apps are rarely collaborators."""
    permissions = FakePermissions()
    payload = comment_event("/claude-e2b run plans/a.md", login="renovate[bot]", user_type="Bot")
    got = decide(payload, permissions, allowed_bots=(listed,))
    assert isinstance(got, Trigger)
    assert got.actor == "renovate[bot]"
    assert permissions.calls == []


@pytest.mark.parametrize("login", ["github-actions[bot]", "GitHub-Actions[bot]"])
def test_our_own_comments_are_ignored(login: str) -> None:
    """A comment by the token's identity never triggers, even when it quotes the command."""
    permissions = FakePermissions()
    payload = comment_event("/claude-e2b run plans/a.md", login=login, user_type="Bot")
    got = decide(payload, permissions)
    assert got == Ignored("our own comment")
    assert permissions.calls == []


def test_comments_with_our_marker_are_ignored() -> None:
    """Our result comment, posted with a person's token, carries the marker: ignored."""
    body = f"{OWN_MARKER}:result -->\n/claude-e2b run plans/a.md\nfinished: 3 files changed"
    assert decide(comment_event(body, login="alice")) == Ignored("our own comment")


def test_our_refusal_reply_does_not_trigger_us_again() -> None:
    """The reply we post, seen as a new comment by any identity, is ignored (no loops)."""
    refused = decide(comment_event("/claude-e2b run ../x"))
    assert isinstance(refused, Refused)
    echoed = decide(comment_event(refused.reply, login="mallory"), own_logins=())
    assert echoed == Ignored("our own comment")


def test_a_persons_token_identity_can_still_command_when_not_listed() -> None:
    """With own_logins empty (a person's token), that person's commands run."""
    got = decide(comment_event("/claude-e2b run plans/a.md"), own_logins=())
    assert isinstance(got, Trigger)


# --- defensive payload reading ---


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("comment", "user", "login"), "comment.user.login"),
        (("comment", "user"), "comment.user.login"),
        (("comment", "id"), "comment.id"),
        (("issue", "number"), "issue.number"),
        (("action",), "action"),
    ],
)
def test_missing_payload_fields_are_config_errors_naming_the_key(
    path: tuple[str, ...], key: str
) -> None:
    """A payload without a needed field names it; never a KeyError."""
    payload = comment_event("/claude-e2b run plans/a.md")
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    with pytest.raises(ConfigError) as caught:
        decide(payload)
    assert caught.value.message == f"the event payload has no {key}"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("comment", "id"), "1234567", "comment.id is not a number"),
        (("issue", "number"), True, "issue.number is not a number"),
        (("comment", "user", "login"), 7, "comment.user.login is not a string"),
        (("comment", "body"), ["x"], "comment.body is not a string"),
    ],
)
def test_mistyped_payload_fields_are_config_errors(
    path: tuple[str, ...], value: object, message: str
) -> None:
    """A field of the wrong JSON type is named, not used."""
    payload = comment_event("/claude-e2b run plans/a.md")
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        decide(payload)


def test_a_null_comment_body_is_an_empty_comment() -> None:
    """GitHub may send body null: nothing to do."""
    payload = comment_event("")
    payload["comment"]["body"] = None
    assert isinstance(decide(payload), Ignored)


def test_the_payload_is_not_modified() -> None:
    """Reading the event leaves the payload as it was."""
    payload = comment_event("/claude-e2b run plans/a.md", on_pull_request=True)
    before = copy.deepcopy(payload)
    decide(payload)
    assert payload == before


# --- helpers for the caller ---


@pytest.mark.parametrize(
    ("response", "level"),
    [
        ({"permission": "write", "role_name": "maintain"}, "maintain"),
        ({"permission": "read", "role_name": "triage"}, "triage"),
        ({"permission": "admin", "role_name": "admin"}, "admin"),
        ({"permission": "write", "role_name": "security-reviewer"}, "write"),
        ({"permission": "write"}, "write"),
        ({"permission": "superuser", "role_name": "superuser"}, "none"),
        ({}, "none"),
    ],
)
def test_access_level_prefers_role_name_and_falls_back_to_the_base(
    response: dict[str, str], level: str
) -> None:
    """role_name tells maintain and triage apart; a custom role counts as its base level."""
    assert access_level(response) == level


def test_default_branch_comes_from_the_repository_object() -> None:
    """repository.default_branch, or None when the payload has no repository."""
    assert default_branch_of(comment_event("x")) == "main"
    assert default_branch_of(SCHEDULE_EVENT) is None


# --- properties of the path check ---

PATHISH = st.text(alphabet=st.sampled_from("ab./-~ \\\x00\n\t\u202e:é"), max_size=30)
COMPONENT = st.sampled_from(["..", ".", "", "a", "b c", "-x", "~", "\\", "\x00", "é", ".git", "x:"])
COMPONENTS = st.lists(st.one_of(COMPONENT, st.text(max_size=4)), max_size=6).map("/".join)


@given(st.one_of(PATHISH, COMPONENTS, st.text(max_size=60)))
def test_an_accepted_path_stays_inside_the_repository(text: str) -> None:
    """No accepted path is absolute, has '..', a backslash or control characters, or escapes."""
    try:
        path = check_plan_path(text)
    except ValueError:
        return
    root = "/repo"
    assert posixpath.normpath(posixpath.join(root, path)).startswith(root + "/")
    assert not path.startswith("/")
    assert ".." not in path.split("/")
    assert not set(path) & set('\\<>:"|?*`')
    assert ".git" not in path.split("/")
    assert path.isprintable()
    assert path == posixpath.normpath(path)
    assert check_plan_path(path) == path


@given(st.text(max_size=80))
def test_any_comment_gives_a_decision_and_a_trigger_only_with_a_clean_path(text: str) -> None:
    """Whatever follows the command: a Trigger with a valid path, or a refusal; never a crash."""
    got = decide(comment_event(f"/claude-e2b run {text}"), plan_input="plans/default.md")
    assert isinstance(got, Trigger | Refused | Ignored)
    if isinstance(got, Trigger):
        assert check_plan_path(got.plan) == got.plan
        assert got.plan == "plans/default.md" or all(p in text for p in got.plan.split("/"))


def test_a_leading_dash_hidden_behind_dot_slash_is_refused():
    """`./-x` normalises to `-x`, which could read as an option: refused like `-x` itself."""
    with pytest.raises(ValueError, match="may not start with"):
        check_plan_path("./-")
    with pytest.raises(ValueError, match="may not start with"):
        check_plan_path("./~/plan.md")
