"""Writes README.md's generated parts: the action's inputs and outputs, the quick start.

Each part sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` lines and is
rendered from the file that owns it, so the README cannot drift from them:

    action-inputs, action-outputs    tables from action.yml
    quick-start-plan                 examples/plans/health-endpoint.md
    quick-start-workflow             examples/workflows/dispatch.yml

    uv run python scripts/action_docs.py           rewrite README.md
    uv run python scripts/action_docs.py --check   exit 1 if README.md is out of date
"""

# ruff: noqa: INP001  (a script, not a package)

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
_CODE_SPAN = re.compile(r"(`[^`]*`)")
_BACKTICK_RUN = re.compile(r"`{3,}")


def cell(text: str) -> str:
    """Text as one Markdown table cell: one line, `|` escaped, `<…>` shown, not read as HTML."""
    parts = _CODE_SPAN.split(" ".join(str(text).split()))
    # Odd parts are code spans: entities would show literally there; `\|` works in both.
    shown = [part if i % 2 else _no_html(part) for i, part in enumerate(parts)]
    return "".join(shown).replace("|", r"\|")


def _no_html(text: str) -> str:
    """Angle brackets as entities, so `<plan file name>` is shown, not taken for a tag."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _row(*cells: str) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(cells) + " |"


def _code(value: str) -> str:
    """A value as inline code, or nothing for an empty one."""
    return cell(f"`{value}`") if value else ""


def input_table(action: Mapping[str, Any]) -> str:
    """The inputs of action.yml as a Markdown table, in the file's order."""
    rows = [_row("Input", "Default", "Description"), _row("---", "---", "---")]
    for name, spec in (action.get("inputs") or {}).items():
        default = "required" if spec.get("required") else _code(str(spec.get("default", "")))
        rows.append(_row(f"`{name}`", default, cell(spec.get("description", ""))))
    return "\n".join(rows)


def output_table(action: Mapping[str, Any]) -> str:
    """The outputs of action.yml as a Markdown table, in the file's order."""
    rows = [_row("Output", "Description"), _row("---", "---")]
    for name, spec in (action.get("outputs") or {}).items():
        rows.append(_row(f"`{name}`", cell(spec.get("description", ""))))
    return "\n".join(rows)


def fenced(path: Path, language: str) -> str:
    """A file's text in a fenced code block longer than any backtick run inside it."""
    text = path.read_text(encoding="utf-8").rstrip("\n")
    fence = "`" * max([3, *(len(run) + 1 for run in _BACKTICK_RUN.findall(text))])
    return f"{fence}{language}\n{text}\n{fence}"


def blocks(root: Path) -> dict[str, str]:
    """Each generated part of the README, by marker name, rendered from the repository."""
    action = yaml.safe_load((root / "action.yml").read_text(encoding="utf-8"))
    return {
        "quick-start-plan": fenced(root / "examples/plans/health-endpoint.md", "markdown"),
        "quick-start-workflow": fenced(root / "examples/workflows/dispatch.yml", "yaml"),
        "action-inputs": input_table(action),
        "action-outputs": output_table(action),
    }


def render(readme: str, parts: Mapping[str, str]) -> str:
    """README text with every generated part replaced.

    Raises ValueError when a part's start or end marker is missing or not unique.
    """
    for name, text in parts.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if not _one_pair(readme, start, end):
            raise ValueError(f"README.md needs one '{start}' line followed by one '{end}' line")
        head, rest = readme.split(start)
        _, tail = rest.split(end)
        readme = f"{head}{start}\n{text}\n{end}{tail}"
    return readme


def _one_pair(text: str, start: str, end: str) -> bool:
    """Whether the text has exactly one start marker, then exactly one end marker."""
    return text.count(start) == 1 == text.count(end) and text.index(start) < text.index(end)


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite README.md, or with --check say whether it is up to date (exit 1 if not)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository (default: this)")
    args = parser.parse_args(argv)
    readme_path = args.root / "README.md"
    current = readme_path.read_text(encoding="utf-8")
    wanted = render(current, blocks(args.root))
    if wanted == current:
        return 0
    if args.check:
        sys.stderr.write(f"{readme_path} is stale: uv run python scripts/action_docs.py\n")
        return 1
    readme_path.write_text(wanted, encoding="utf-8")
    sys.stdout.write(f"updated {readme_path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
