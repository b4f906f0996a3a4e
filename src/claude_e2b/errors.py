"""The error tree of claude-e2b, and the exit code each branch maps to.

Adapters translate library errors (e2b, PyGithub, git, the file system) into the
most specific class here, ``raise Mapped(...) from exc``, so nothing else in the
package ever sees a library's own exception.

```
ClaudeE2BError                      exit 3 unless a subclass says otherwise
├── UserError                       exit 2: bad input the user can fix
│   ├── PlanError                   plan file: "PATH:LINE: message" lines
│   └── ConfigError                 flags, inputs, environment
├── SandboxError                    the sandbox backend failed
│   ├── SandboxStartError           could not create or reach a new sandbox
│   ├── SandboxLimitError           refused before creating one: too many running, or
│   │                               created in the last hour (exit 1: nothing ran)
│   ├── SandboxGoneError            killed, evicted or past its lifetime
│   ├── SandboxTimeoutError         one call ran past its timeout
│   ├── SandboxTransientError       network blip, rate limit, 5xx: retry may help
│   ├── SandboxAuthError            E2B rejected the credentials (exit 2)
│   ├── SandboxFileError            a file call failed (not found, no space…)
│   └── CommandError                a command exited non-zero
├── SyncError                       moving the repository up or the changes back
│   ├── SecretFoundError            the secret scan refused the upload (exit 1)
│   └── UnsafeChangeError           a change that may not be applied
├── PublishError                    the branch, commit, push or pull request (exit 1)
│   ├── GitHubAuthError             the token was refused (401) or lacks a permission (403)
│   ├── GitHubNotFoundError         404
│   ├── GitHubValidationError       422: GitHub refused the request's content
│   │   └── PullExistsError         an open pull request for that head and base exists
│   ├── GitHubRateLimitError        asked to wait longer than the retry policy allows
│   ├── GitHubUnavailableError      5xx, timeout or dropped connection after the retries
│   └── PushError                   git push of the branch failed
├── AgentError                      Claude Code could not be run
└── InternalError                   a bug: please report it
```
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_RUN_INCOMPLETE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class ClaudeE2BError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code: ClassVar[int] = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UserError(ClaudeE2BError):
    """Bad input that the user can fix; nothing ran."""

    exit_code: ClassVar[int] = EXIT_BAD_INPUT


class PlanError(UserError):
    """A plan file is invalid; ``problems`` holds one "PATH:LINE: message" per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ConfigError(UserError):
    """A flag, action input or environment variable is invalid."""


class SandboxError(ClaudeE2BError):
    """The sandbox backend failed."""


class SandboxStartError(SandboxError):
    """A sandbox could not be created or reached."""


class SandboxLimitError(SandboxError):
    """A new sandbox would go past a configured limit; none was created.

    Exit 1, as a run the secret scan blocks: the plan and flags are fine and nothing
    ran; the same command succeeds once sandboxes end (or are killed) or the hour
    passes. Exit 2 would tell a workflow its input is wrong, which it is not.
    """

    exit_code: ClassVar[int] = EXIT_RUN_INCOMPLETE


class SandboxGoneError(SandboxError):
    """The sandbox was killed, evicted or reached the end of its lifetime."""


class SandboxTimeoutError(SandboxError):
    """One call to the sandbox ran past its timeout."""


class SandboxTransientError(SandboxError):
    """A failure that a retry may cure: network, rate limit, server error."""


class SandboxAuthError(SandboxError):
    """The sandbox provider rejected the credentials."""

    exit_code: ClassVar[int] = EXIT_BAD_INPUT


class SandboxFileError(SandboxError):
    """A file operation in the sandbox failed."""


class CommandError(SandboxError):
    """A command in the sandbox exited with a non-zero code."""

    def __init__(self, message: str, *, exit_code: int, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.command_exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr


class SyncError(ClaudeE2BError):
    """Moving the repository into the sandbox or the changes back failed."""


class SecretFoundError(SyncError):
    """The secret scan found credentials and the plan says to fail."""

    exit_code: ClassVar[int] = EXIT_RUN_INCOMPLETE


class UnsafeChangeError(SyncError):
    """A change from the sandbox may not be applied to the checkout."""


class PublishError(ClaudeE2BError):
    """Publishing the run's changes failed; they are still applied to the checkout."""

    exit_code: ClassVar[int] = EXIT_RUN_INCOMPLETE

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class GitHubAuthError(PublishError):
    """GitHub refused the token: invalid (401) or lacking a permission (403)."""


class GitHubNotFoundError(PublishError):
    """GitHub answered 404."""


class GitHubValidationError(PublishError):
    """GitHub answered 422: it refused the request's content."""


class PullExistsError(GitHubValidationError):
    """An open pull request for the same head and base exists already."""


class GitHubRateLimitError(PublishError):
    """GitHub asked us to wait longer than the retry policy allows."""


class GitHubUnavailableError(PublishError):
    """A server error, timeout or dropped connection that the retries did not cure."""


class PushError(PublishError):
    """``git push`` of the branch failed."""


class AgentError(ClaudeE2BError):
    """Claude Code could not be started or its output not read."""


class InternalError(ClaudeE2BError):
    """A bug in claude-e2b."""
