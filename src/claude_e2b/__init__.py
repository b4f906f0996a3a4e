"""claude-e2b: Claude Code in a disposable E2B sandbox, from CI to a pull request."""
