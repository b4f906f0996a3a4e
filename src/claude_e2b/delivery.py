"""What becomes of a finished run: its files on disk and its pull request.

Both edges use it: ``claude-e2b run`` (without ``--no-pr``) and the Action. The
run's changes are already applied to the checkout; publishing commits exactly
those paths onto the checked-out commit, pushes the branch and opens or updates
the pull request. A publishing failure never loses the work: it stays applied
locally, the result says why there is no PR, and the caller exits 1.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from claude_e2b.config import RunConfig
from claude_e2b.errors import ConfigError, PublishError
from claude_e2b.github.api import GitHubApi, GitHubTarget
from claude_e2b.github.commit import is_valid_branch
from claude_e2b.github.publish import PullRequestSpec, default_branch_name, publish
from claude_e2b.log import get_logger
from claude_e2b.pipeline import plan_path_in_repo
from claude_e2b.report import ReportContext, render_pr_body, render_summary
from claude_e2b.result import RunResult, write_result

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
    ctx: ReportContext,
) -> Delivery:
    """Open or update the run's pull request when it changed something."""
    if not result.changes:
        return Delivery(result)
    body = render_pr_body(result, ctx)
    spec = pull_request_spec(config, result, branch=branch_for(config), base=base, body=body)
    warnings: list[str] = []
    try:
        pr = publish(config.repo_dir, result.changes, target, spec, api, on_warning=warnings.append)
    except PublishError as exc:
        log.error("publish.failed", error=str(exc))  # noqa: TRY400 - a known error
        note = f"no pull request: {exc.message} (the changes are applied to the checkout)"
        return Delivery(replace(result, warnings=(*result.warnings, note)), exc)
    return Delivery(replace(result, pr=pr, warnings=(*result.warnings, *warnings)))


def write_run_files(result: RunResult, output_dir: Path, ctx: ReportContext) -> Path:
    """result.json and summary.md (the PR body in full); returns result.json's path."""
    path = output_dir / "result.json"
    write_result(result, path)
    (output_dir / "summary.md").write_text(render_summary(result, ctx), encoding="utf-8")
    return path
