"""Claude Code in the sandbox: command line, events, live progress, watchdog."""
