"""Markdown for GitHub from text the agent controls: no HTML, no pings, no closing keywords.

Every function returns Markup (safe for the report templates) and escapes for the
place the text lands: a blockquote, one line, a table cell, a code span, a fenced
block. The word joiner breaks a tag, a mention or a closing keyword without
changing what a reader sees, in text and in code alike.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from markupsafe import Markup

WORD_JOINER = "\u2060"  # invisible; breaks a tag or a mention without changing the text shown

_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")  # what CommonMark reads as HTML, never an autolink
_MENTION = re.compile(r"(?<![A-Za-z0-9_])@(?=[A-Za-z0-9])")
_CLOSING = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\b:?\s+(?:[\w.-]+/[\w.-]+)?#(?=\d)",
    re.IGNORECASE,
)
_NEWLINE = re.compile(r"\r\n?")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # ASCII punctuation: every one may be escaped
_LINE_BREAKS = re.compile(r"\s*\n\s*")
_BLOCK_START = re.compile(r"[#>+*=|~`[-]|\d+[.)]")  # a list item, heading, link definition…
_BACKTICKS = re.compile(r"`+")
_CONTROLS = {c: chr(0x2400 + c) for c in range(0x20)} | {0x7F: "\u2421"}  # ␀…␟, ␡


def _plain(value: Any) -> str:
    return _NEWLINE.sub("\n", str(value))


def _neutralise(text: str) -> str:
    text = _MENTION.sub("@" + WORD_JOINER, _TAG_OPEN.sub("<" + WORD_JOINER, text))
    # "Fixes #12" in a PR body would close issue 12 on merge: the agent does not decide that.
    return _CLOSING.sub(lambda m: m[0].replace("#", "#" + WORD_JOINER), text)


def _visible_controls(text: str, keep: str = "") -> str:
    return text.translate({c: p for c, p in _CONTROLS.items() if chr(c) not in keep})


def md_text(value: Any) -> Markup:
    """Markdown text as it is, except that no HTML can open and no @-mention can ping.

    The word joiner shows as nothing in text and in code alike, so this is safe
    whether the agent's Markdown puts a ``<`` in a code span or not.
    """
    return Markup(_neutralise(_plain(value)))  # noqa: S704 - neutralised just above


def md_inline(value: Any) -> Markup:
    """One line of text (a list item, a sentence): line breaks become spaces."""
    text = _LINE_BREAKS.sub(" ", _neutralise(_plain(value))).strip()
    start = _BLOCK_START.match(text)
    if start:  # escape what would start a block: the mark, or the "." of "1."
        text = f"{text[: start.end() - 1]}\\{text[start.end() - 1 :]}"
    return Markup(text)  # noqa: S704 - neutralised above


def md_quote(value: Any) -> Markup:
    """The agent's Markdown in a blockquote, which ends whatever the text leaves open."""
    text = _neutralise(_plain(value)).rstrip()
    if not text:
        return Markup("")
    return Markup("\n".join(f"> {line}" if line else ">" for line in text.split("\n")))  # noqa: S704


def md_cell(value: Any) -> Markup:
    """Literal text in a table cell: one line, every Markdown character escaped."""
    text = _PUNCTUATION.sub(r"\\\1", _visible_controls(str(value)))
    return Markup(_MENTION.sub("@" + WORD_JOINER, text))  # noqa: S704 - escaped above


def md_code(value: Any) -> Markup:
    """A code span (not for tables: see md_cell_code); shows the text exactly."""
    text = _visible_controls(str(value))
    if not text:
        return Markup("")
    fence = "`" * (max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)
    # One space each side is stripped by the renderer: pad when the text needs its own.
    if text.strip(" ") and (text[0] in "` " or text[-1] in "` "):
        text = f" {text} "
    return Markup(f"{fence}{text}{fence}")  # noqa: S704 - code spans show their content literally


def md_cell_code(value: Any) -> Markup:
    """A code span in a table cell; text with a pipe is shown as escaped text instead.

    GitHub splits table cells before reading code spans, and inside a code span
    no escape could keep a pipe after a backslash from splitting the row.
    """
    return md_cell(value) if "|" in str(value) else md_code(value)


def md_fence(value: Any) -> Markup:
    """A literal block whose fence is longer than any run of backticks inside."""
    text = _visible_controls(_ANSI.sub("", _plain(value)), keep="\n\t").rstrip("\n")
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return Markup(f"{fence}\n{text}\n{fence}" if text else f"{fence}\n{fence}")  # noqa: S704


def md_link(text: Any, url: str | None) -> Markup:
    """A link with escaped text; just the text when the URL is not http(s)."""
    label = md_cell(text)
    if not url or urllib.parse.urlsplit(url).scheme.lower() not in {"http", "https"}:
        return label
    safe_url = urllib.parse.quote(url, safe=":/?#[]@!$&'*+,;=%~")
    return Markup(f"[{label}]({safe_url})")  # noqa: S704 - both parts escaped
