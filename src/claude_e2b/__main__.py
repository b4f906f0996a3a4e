"""``python -m claude_e2b``: the same as the ``claude-e2b`` command."""

from claude_e2b.cli import main

main()
