"""What becomes of a finished run: its files on disk and its pull request.

Both edges use it: ``claude-e2b run`` (without ``--no-pr``) and the Action. The
run's changes are already applied to the checkout; publishing commits exactly
those paths onto the checked-out commit, pushes the branch and opens or updates
the pull request. A publishing failure never loses the work: it stays applied
locally, the result says why there is no PR, and the caller exits 1.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from claude_e2b.config import RunConfig
from claude_e2b.errors import ConfigError, PublishError
from claude_e2b.github.commit import is_valid_branch
from claude_e2b.github.publish import PullRequestSpec, default_branch_name, publish
from claude_e2b.github.target import GitHubTarget
from claude_e2b.log import get_logger
from claude_e2b.outcome import plan_path_in_repo
from claude_e2b.result import RunResult, write_result

if TYPE_CHECKING:  # PyGithub loads when a caller opens the API: a --no-pr run never does
    from claude_e2b.github.api import GitHubApi
    from claude_e2b.report import ReportContext

GIT_TIMEOUT_S = 30.0

log = get_logger(__name__)


@dataclass(frozen=True)
class Delivery:
    """The result as published (``pr`` set, publishing's warnings added), or why it was not."""

    result: RunResult
    error: PublishError | None = None

    @property
    def exit_code(self) -> int:
        """The run's exit code, or 1 when its pull request could not be published."""
        return max(self.result.exit_code, self.error.exit_code if self.error else 0)


def branch_for(config: RunConfig) -> str:
    """The branch the changes go to: the input's or plan's, else ``claude-e2b/<plan stem>``.

    Raises ConfigError when it is not a valid branch name (checked before the run).
    """
    branch = config.publish.branch or default_branch_name(
        plan_path_in_repo(config) or config.plan.path.name
    )
    if not is_valid_branch(branch):
        raise ConfigError(
            f"{branch!r} is not a valid branch name",
            hint="set branch (input or plan key) to a name git accepts, e.g. claude-e2b/nightly",
        )
    return branch


def checked_out_branch(repo_dir: Path) -> str | None:
    """The branch the checkout is on; None when HEAD is detached."""
    done = subprocess.run(
        ["git", "symbolic-ref", "--quiet", "--short", "HEAD"],
        cwd=repo_dir,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )
    return done.stdout.strip() or None


def base_for(config: RunConfig, fallback: str | None) -> str:
    """The pull request's base: the input's or plan's, else the branch checked out.

    Raises ConfigError when none can be told (a detached HEAD and no fallback).
    """
    base = config.publish.base_branch or checked_out_branch(config.repo_dir) or fallback
    if not base:
        raise ConfigError(
            "cannot tell which branch the pull request should target: HEAD is detached",
            hint="set base-branch (input or plan key), e.g. base-branch: main",
        )
    return base


def pull_request_spec(
    config: RunConfig, result: RunResult, *, branch: str, base: str, body: str
) -> PullRequestSpec:
    """The pull request for this run: a draft unless it completed (or as told)."""
    settings = config.publish
    draft = settings.draft if settings.draft is not None else result.status != "completed"
    title = config.plan.display_title
    return PullRequestSpec(
        branch=branch,
        base=base,
        title=title,
        body=body,
        draft=draft,
        labels=settings.labels,
        reviewers=settings.reviewers,
        commit_message=f"{title}\n\nMade by claude-e2b, run {result.run_id} ({result.status}).",
        sign_commits=settings.sign_commits,
    )


def publish_run(
    config: RunConfig,
    result: RunResult,
    target: GitHubTarget,
    api: GitHubApi,
    *,
    base: str,
    ctx: ReportContext | None = None,
) -> Delivery:
    """Open or update the run's pull request when it changed something."""
    if not result.changes:
        return Delivery(result)
    from claude_e2b.report import ReportContext, render_pr_body  # noqa: PLC0415 - see write_run_files

    body = render_pr_body(result, ctx or ReportContext())
    spec = pull_request_spec(config, result, branch=branch_for(config), base=base, body=body)
    warnings: list[str] = []
    try:
        pr = publish(config.repo_dir, result.changes, target, spec, api, on_warning=warnings.append)
    except PublishError as exc:
        log.error("publish.failed", error=str(exc))  # noqa: TRY400 - a known error
        return Delivery(replace(result, warnings=(*result.warnings, no_pr_note(exc))), exc)
    return Delivery(replace(result, pr=pr, warnings=(*result.warnings, *warnings)))


def no_pr_note(exc: PublishError) -> str:
    """The run's warning when publishing failed: what happened, where the work is, what to do."""
    note = f"no pull request: {exc.message}; the changes are applied to the checkout"
    return f"{note}; {exc.hint}" if exc.hint else note


def write_run_files(result: RunResult, output_dir: Path, ctx: ReportContext | None = None) -> Path:
    """result.json and summary.md (the PR body in full); returns result.json's path.

    The templates (Jinja2, 0.1 s to import) load here, once the run is over, not
    before its sandbox starts; ``ctx`` defaults to a local run's (no Actions run).
    """
    from claude_e2b.report import ReportContext, render_summary  # noqa: PLC0415

    path = output_dir / "result.json"
    write_result(result, path)
    summary = render_summary(result, ctx or ReportContext())
    (output_dir / "summary.md").write_text(summary, encoding="utf-8")
    return path


_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def origin_url(repo_dir: Path) -> str:
    """The URL of the checkout's ``origin`` remote; raises ConfigError without one."""
    done = subprocess.run(
        ["git", "remote", "get-url", "origin"],
        cwd=repo_dir,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise ConfigError(
            f"{repo_dir} has no `origin` remote to open the pull request on",
            hint="add one (git remote add origin URL), or pass --no-pr",
        )
    return done.stdout.strip()


def target_from_remote(url: str, token: str, environ: Mapping[str, str]) -> GitHubTarget:
    """Server, API and ``owner/name`` from a remote URL (https, ssh or scp-like).

    GITHUB_SERVER_URL, GITHUB_API_URL and GITHUB_REPOSITORY override what the URL says.
    Raises ConfigError when the URL names no ``owner/name``.
    """
    parts = urlsplit(url)
    scp = None if parts.scheme else _SCP_LIKE.match(url)
    host = parts.netloc.rpartition("@")[2] if parts.scheme else (scp["host"] if scp else "")
    path = parts.path if parts.scheme else (scp["path"] if scp else "")
    scheme = parts.scheme if parts.scheme in {"http", "https"} else "https"
    repository = path.strip("/").removesuffix(".git")
    server = environ.get("GITHUB_SERVER_URL") or f"{scheme}://{host}"
    repository = environ.get("GITHUB_REPOSITORY") or repository
    if not host or repository.count("/") != 1:
        raise ConfigError(
            f"cannot tell the GitHub repository from the origin remote {url!r}",
            hint="set GITHUB_REPOSITORY=owner/name (and GITHUB_SERVER_URL), or pass --no-pr",
        )
    default_api = "https://api.github.com" if host == "github.com" else f"{server}/api/v3"
    api = environ.get("GITHUB_API_URL") or default_api
    return GitHubTarget(api.rstrip("/"), server.rstrip("/"), repository, token)


def cli_target(repo_dir: Path, environ: Mapping[str, str]) -> GitHubTarget:
    """Where ``claude-e2b run`` publishes: the origin's repository, GITHUB_TOKEN or GH_TOKEN.

    Raises ConfigError when there is no token or no usable origin remote.
    """
    token = environ.get("GITHUB_TOKEN") or environ.get("GH_TOKEN")
    if not token:
        raise ConfigError(
            "opening a pull request needs a GitHub token",
            hint="export GITHUB_TOKEN (or GH_TOKEN), e.g. GH_TOKEN=$(gh auth token); "
            "or pass --no-pr to only apply the changes",
        )
    return target_from_remote(origin_url(repo_dir), token, environ)
