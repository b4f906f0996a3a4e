"""A local GitHub for tests; see tests/stand_ins/github_server.py for the tour."""
