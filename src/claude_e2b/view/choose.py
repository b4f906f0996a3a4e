"""Which view a run gets, and the logging that goes with it.

=========================  ============================================
``--log-format``           view
=========================  ============================================
``auto`` / ``text``        rich on a terminal; plain lines otherwise
                           (on GitHub Actions always plain, with groups)
``json``                   structlog JSON lines (``JsonView``)
=========================  ============================================

A ``TERM=dumb`` terminal gets the plain view (it cannot move the cursor);
``NO_COLOR`` keeps the rich view without colours. The caller reads those from the
environment and passes them in: nothing here reads it.
"""

from __future__ import annotations

from typing import Literal, TextIO

from rich.console import Console

from claude_e2b.github.workflow import Workflow
from claude_e2b.log import configure_logging
from claude_e2b.view import RunView
from claude_e2b.view.json_lines import JsonView
from claude_e2b.view.plain import PlainView
from claude_e2b.view.terminal import RichView

LogFormat = Literal["auto", "text", "json"]


def make_view(
    stream: TextIO,
    *,
    log_format: LogFormat,
    verbose: bool,  # noqa: ARG001 - the views show the same; -v is the log's business
    github_actions: bool,
    no_color: bool = False,
    dumb_terminal: bool = False,
    workflow: Workflow | None = None,
) -> RunView:
    """The view for ``stream``: rich on a capable terminal, plain lines elsewhere, or JSON.

    ``workflow`` (on Actions) is shared with the caller so annotations keep one count.
    """
    if log_format == "json":
        return JsonView(workflow if github_actions else None)
    if github_actions or dumb_terminal or not _is_terminal(stream):
        return PlainView(stream, github_actions=github_actions, workflow=workflow)
    console = Console(
        file=stream,
        force_terminal=True,
        no_color=no_color,
        highlight=False,
        emoji=False,
        soft_wrap=False,
    )
    return RichView(console)


def configure_output(
    stream: TextIO,
    *,
    log_format: LogFormat,
    verbose: bool,
    github_actions: bool,
    no_color: bool = False,
    dumb_terminal: bool = False,
    workflow: Workflow | None = None,
) -> RunView:
    """Make the view (see ``make_view``) and point the log at the same output.

    With a text view the log shows only warnings and errors (``verbose``: all)
    through the view; with JSON, JSON lines on ``stream`` as before.
    """
    view = make_view(
        stream,
        log_format=log_format,
        verbose=verbose,
        github_actions=github_actions,
        no_color=no_color,
        dumb_terminal=dumb_terminal,
        workflow=workflow,
    )
    if isinstance(view, PlainView | RichView):
        configure_logging(json_lines=False, verbose=verbose, sink=view.log_line)
    else:
        configure_logging(json_lines=True, verbose=verbose, stream=stream)
    return view


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: not a terminal
        return False
