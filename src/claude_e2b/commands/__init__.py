"""The bodies of the ``claude-e2b`` commands; ``cli.py`` imports each only when it runs.

So ``plan check``, ``--help``, ``list`` and ``history`` never pay for the e2b SDK,
PyGithub or rich. Each function takes the parsed arguments and the environment
mapping ``cli.py`` read, and returns the exit code.
"""
