"""``claude-e2b plan check``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from claude_e2b.errors import (
    EXIT_BAD_INPUT,
)
from claude_e2b.plan import check_plan_file


def cmd_plan_check(args: argparse.Namespace, _environ: Mapping[str, str]) -> int:
    """claude-e2b plan check: exit 0, or 2 with PATH:LINE: message lines."""
    problems = check_plan_file(Path(args.path))
    for problem in problems:
        sys.stderr.write(problem + "\n")
    if not problems:
        sys.stdout.write(f"{args.path}: ok\n")
    return EXIT_BAD_INPUT if problems else 0
