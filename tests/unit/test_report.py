import re
import secrets
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from claude_e2b.cost import (
    build_report,
    cost_from_result_event,
    cost_from_streamed_usage,
    load_prices,
)
from claude_e2b.errors import ConfigError
from claude_e2b.log import REDACTOR
from claude_e2b.markdown import md_cell, md_cell_code, md_code, md_fence, md_quote
from claude_e2b.report import (
    COMMENT_MARKER,
    MAX_BODY_BYTES,
    MAX_SUMMARY_BYTES,
    ReportContext,
    comment_marker,
    load_overrides,
    render_issue_comment,
    render_pr_body,
    render_step_summary,
    render_summary,
    usd,
)
from claude_e2b.result import (
    AgentInfo,
    PlanInfo,
    PrInfo,
    RunResult,
    SandboxInfo,
    TimingInfo,
    VerifyInfo,
)

RUN_URL = "https://github.example/octo/app/actions/runs/42"
# CommonMark with GFM tables: an independent reading of what we render.
MD = MarkdownIt("commonmark", {"html": True}).enable("table")
MENTION = re.compile(r"(?<![A-Za-z0-9_])@[A-Za-z0-9]")


def _change(path="src/app.py", status="modified", old_path=None, mode="100644", size=120):
    return {"path": path, "status": status, "old_path": old_path, "mode": mode,
            "binary": False, "bytes": size}  # fmt: skip


def _result(**overrides):
    base = {
        "run_id": "r1",
        "status": "completed",
        "plan": PlanInfo("PLAN.md", "Add a health endpoint", 0, 2, 3),
        "sandbox": SandboxInfo("e2b", "sbx", "anthropic-claude-code", 120.0),
        "agent": AgentInfo(0, 7, "sess", "Added GET /health and a test."),
        "verify": VerifyInfo("pytest -q", 0, "3 passed"),
        "changes": (_change(), _change("b.py", "renamed", "a.py", size=5)),
        "skipped_changes": ({"path": ".github/workflows/ci.yml", "reason": "protected path"},),
        "cost": {
            "claude_usd": 0.5,
            "sandbox_usd": 0.0102,
            "total_usd": 0.5102,
            "input_tokens": 1200,
            "output_tokens": 300,
            "cache_read_tokens": 50000,
            "cache_write_tokens": 9000,
            "by_model": {
                "claude-sonnet-4-5": {
                    "input_tokens": 1200,
                    "output_tokens": 300,
                    "cache_read_tokens": 50000,
                    "cache_write_tokens": 9000,
                    "usd": 0.5,
                    "source": "claude-code",
                }
            },
        },
        "timing": TimingInfo(130.0, 2.0, 120.0, 1.0),
        "warnings": ("the agent has run 30 min of its 60 min limit",),
    }
    base.update(overrides)
    return RunResult(**base)


def _pr():
    return PrInfo("https://github.example/octo/app/pull/7", 7, "claude-e2b/plan", True, "created")


def _section(text, heading):
    return text.split(f"### {heading}\n\n", 1)[1].split("\n### ", 1)[0]


def _table_rows(text, heading):
    lines = _section(text, heading).splitlines()
    return [line for line in lines[2:] if line.startswith("|")]  # below header and rule


# --- content ----------------------------------------------------------------------------


def test_pr_body_shows_every_section():
    """Title, status, the agent's words, plan, files, skipped, verification, cost, timing, link."""
    text = render_pr_body(_result(), ReportContext(run_url=RUN_URL))
    assert text.startswith("## Add a health endpoint\n")
    assert "**Completed**" in text
    assert "> Added GET /health and a test." in text
    assert "`PLAN.md`: 2 of 3 tasks done (0 before this run)." in text
    assert _table_rows(text, "Files changed (2)") == [
        "| `src/app.py` | modified |  | 120 B |",
        "| `b.py` | renamed from `a.py` |  | 5 B |",
    ]
    assert "| `.github/workflows/ci.yml` | protected path |" in text
    assert "`pytest -q` passed (exit code 0)." in text
    assert "```\n3 passed\n```" in text
    assert "| 2.0 s | 2 min 00 s | 1.0 s | 2 min 10 s |" in text
    assert "- the agent has run 30 min of its 60 min limit" in text
    assert f"[workflow run]({RUN_URL})" in text


def test_a_timed_out_run_without_verify_or_changes():
    """An incomplete run says so and renders without the optional parts."""
    text = render_pr_body(
        _result(status="timed_out", verify=None, changes=(), skipped_changes=(), warnings=())
    )
    assert "**Timed out**" in text
    assert "No files changed." in text
    assert "The plan has no verify command." in text
    assert "### Not applied" not in text
    assert "### Warnings" not in text
    assert "workflow run" not in text


def test_a_failed_verify_and_the_reason_a_run_stopped():
    """A failing verify shows its exit code; the run's message is shown literally."""
    text = render_pr_body(
        _result(
            status="failed",
            verify=VerifyInfo("make test", 2, "FAILED"),
            message="the agent ended without a result: <boom>",
        )
    )
    assert "`make test` failed with exit code 2." in text
    assert "```\nthe agent ended without a result: <boom>\n```" in text


def test_cancelled_and_unknown_statuses_render():
    """Every status of the contract has a line; an unknown one still renders."""
    assert "**Cancelled**" in render_pr_body(_result(status="cancelled"))
    assert "**mystery**" in render_pr_body(_result(status="mystery"))


def test_modes_and_sizes_are_named():
    """Executable, symlink and a changed mode are shown; binary files say so."""
    changes = (
        {**_change("run.sh", "added", mode="100755", size=2048), "binary": True},
        _change("link", "added", mode="120000", size=6),
        {**_change("tool.py"), "mode": "100755", "old_mode": "100644"},
        _change("gone.txt", "deleted", mode=""),
    )
    assert _cells(render_pr_body(_result(changes=changes)), "Files")[1:] == [
        ["`run.sh`", "added", "executable", "2.0 KiB, binary"],
        ["`link`", "added", "symlink", "6 B"],
        ["`tool.py`", "modified", "100644 → 100755 (executable)", "120 B"],
        ["`gone.txt`", "deleted", "", "—"],
    ]


def test_cost_table_renders_a_real_cost_report():
    """One row per model, estimates marked, the sandbox, and the total."""
    reported = cost_from_result_event(
        {"claude-sonnet-4-5": {"inputTokens": 2150, "outputTokens": 150,
                               "cacheReadInputTokens": 12000,
                               "cacheCreationInputTokens": 12100, "costUSD": 0.057675}},
        0.057675,
    )  # fmt: skip
    streamed = cost_from_streamed_usage(
        {
            "msg_1": ("claude-haiku-4-5", {"input_tokens": 10000, "output_tokens": 2000}),
            "msg_2": ("gpt-4o", {"input_tokens": 5}),
        },
        load_prices(),
    )
    report = build_report(
        reported + streamed,
        sandbox_seconds=125.0,
        vcpus=2,
        memory_gib=2,
        table=load_prices(),
        estimated=False,
    )
    sandbox = SandboxInfo("e2b", "sbx", "anthropic-claude-code", 125.0)
    text = render_pr_body(_result(cost=report.to_result(), sandbox=sandbox))
    # haiku 4.5: 10k in at $1 + 2k out at $5 per MTok; sandbox: 125 s x (2 x $0.000014
    # + 2 GiB x $0.0000045) = $0.004625 (half a cent's hundredth: down to 0.0046, as it
    # is below the half); Claude Code's own $0.057675 rounds half up to 0.0577.
    assert _table_rows(text, "Cost") == [
        "| Claude `claude-sonnet-4-5` | 2,150 | 150 | 12,000 | 12,100 | $0.0577 |",
        "| Claude `claude-haiku-4-5` | 10,000 | 2,000 | 0 | 0 | ≈ $0.0200 |",
        "| Claude `gpt-4o` (no known price) | 5 | 0 | 0 | 0 | ≈ $0.0000 |",
        "| Sandbox (e2b, 2 min 05 s) | | | | | ≈ $0.0046 |",
        "| **Total** | 12,155 | 2,150 | 12,000 | 12,100 | **≈ $0.0823** |",
    ]
    assert "priced from claude-e2b's price table" in text


def test_a_local_sandbox_is_not_billed_and_exact_costs_are_not_marked():
    """Claude Code's own figures and a local sandbox carry no estimate mark."""
    cost = {**_result().cost, "sandbox_usd": 0.0, "total_usd": 0.5}
    text = render_pr_body(_result(cost=cost, sandbox=SandboxInfo("local", "l", "local", 3.0)))
    assert "| Sandbox (local, 3.0 s, not billed) | | | | | $0.0000 |" in text
    assert "≈" not in text


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(0.00015, "$0.0002"), (0.00014999, "$0.0001"), (0.057675, "$0.0577"), (1234.5, "$1,234.5000")],
)
def test_dollars_round_half_up_to_four_decimals(amount, shown):
    """Halves round up as written in decimal, not as the binary float happens to fall."""
    assert usd(amount) == shown


@given(st.integers(min_value=0, max_value=10**9))
def test_whole_hundredths_of_a_cent_show_exactly(n):
    """A figure with four decimals is shown as it is, with thousands separators."""
    assert usd(n / 10_000) == f"${n // 10_000:,}.{n % 10_000:04d}"


def test_step_summary_has_the_pr_and_the_warnings_that_were_not_annotations():
    """The summary links the PR and lists overflowed warnings once each."""
    ctx = ReportContext(
        run_url=RUN_URL,
        extra_warnings=("the agent has run 30 min of its 60 min limit", "overflow warning 11"),
    )
    text = render_step_summary(_result(pr=_pr()), ctx)
    assert (
        "**Pull request:** [\\#7](https://github.example/octo/app/pull/7) (created, draft)" in text
    )
    warnings = [line for line in _section(text, "Warnings").splitlines() if line.startswith("- ")]
    assert warnings == ["- the agent has run 30 min of its 60 min limit", "- overflow warning 11"]


def test_full_summary_equals_the_pr_body_when_nothing_is_cut():
    """summary.md is the PR body; only a too long one differs."""
    result = _result()
    assert render_summary(result) == render_pr_body(result)


def test_secrets_never_reach_a_report():
    """Known secret values are redacted in every report, including the run's message."""
    secret = "sk-test-" + secrets.token_hex(16)
    REDACTOR.add(secret)
    result = _result(
        agent=AgentInfo(0, 1, "s", f"the key is {secret}"),
        message=f"failed with {secret}",
        status="blocked",
        pr=None,
    )
    ctx = ReportContext(extra_warnings=(f"leaked {secret}",))
    for render in (render_pr_body, render_step_summary, render_issue_comment, render_summary):
        assert secret not in render(result, ctx)


# --- the issue comment ------------------------------------------------------------------


def test_issue_comment_links_the_pr_and_the_run():
    """Marker first, the status, the PR, the total cost and the run."""
    text = render_issue_comment(_result(pr=_pr()), ReportContext(run_url=RUN_URL))
    assert text.splitlines()[0] == COMMENT_MARKER
    assert "**Completed**" in text
    assert "[\\#7](https://github.example/octo/app/pull/7)" in text
    assert "**Cost:** ≈ $0.5102" in text
    assert f"[workflow run]({RUN_URL})" in text
    assert "### " not in text  # short: no report sections


def test_issue_comment_says_why_there_is_no_pr():
    """No changes: no pull request, said so; a blocked run says why."""
    none = render_issue_comment(_result(status="no_changes", changes=()))
    assert "No changes, so no pull request." in none
    blocked = render_issue_comment(
        _result(status="blocked", changes=(), message="secret found before upload: .env:1")
    )
    assert "blocked (secret found before upload: .env:1), so no pull request." in blocked
    told = ReportContext(no_pr_reason="Pushing the branch failed: 403.")
    assert "Pushing the branch failed: 403.\n" in render_issue_comment(_result(), told)


def test_comment_markers_are_hidden_and_one_per_key():
    """A keyed marker is a stable HTML comment, different per key, whatever the key holds."""
    key = "issue 12 --> <b>plans/x.md</b>"
    marker = comment_marker(key)
    assert marker == comment_marker(key) != comment_marker("issue 13")
    text = render_issue_comment(_result(), ReportContext(comment_key=key))
    assert text.splitlines()[0] == marker
    [block, *_] = MD.parse(text)
    assert block.type == "html_block"
    assert block.content == marker + "\n"  # the comment ends on its own line


# --- escaping ---------------------------------------------------------------------------


def test_html_and_mentions_in_agent_text_are_inert():
    """An <img>, a comment that would hide the rest, and @-mentions render as text."""
    message = "Done <img src=x onerror=alert(1)> <!-- hide\n<details>\n@octo/team thanks @bob"
    text = render_pr_body(_result(agent=AgentInfo(0, 1, "s", message)))
    assert _html_tokens(text) == _html_tokens(render_pr_body(_result()))
    assert not _mentions(text)
    assert "### Cost" in text  # not swallowed by the comment
    assert "@\u2060octo/team" in text  # shown the same, pinging nobody


def test_an_unclosed_fence_in_the_agent_text_does_not_swallow_the_report():
    """The blockquote ends the agent's open code block; the cost table is still a table."""
    message = "Here:\n```python\nprint('never closed')"
    text = render_pr_body(_result(agent=AgentInfo(0, 1, "s", message)))
    assert _structure(text) == _structure(render_pr_body(_result()))


def test_paths_with_pipes_backticks_and_newlines_stay_in_their_cell():
    """Table cells keep their column count whatever the path holds."""
    paths = ["a|b.py", "x`y`z.md", "two\nlines.txt", "back\\|slash", "``", "<td>x</td>"]
    changes = tuple(_change(p) for p in paths)
    text = render_pr_body(_result(changes=changes))
    shapes = [row for kind, row in _tables(text) if kind == "Files"]
    assert shapes == [[4] * (len(paths) + 1)]


def test_code_spans_show_their_text_exactly():
    """A path with backticks and spaces at its ends is rendered as exactly that code."""
    for value in ["`x`", " padded ", "a``b", "plain"]:
        [para] = [t for t in MD.parse(str(md_code(value))) if t.type == "inline"]
        assert para.children[0].type == "code_inline"
        assert para.children[0].content == value


def test_verify_output_is_shown_exactly_in_a_long_enough_fence():
    """Backtick runs inside cannot close the block; ANSI colours are dropped."""
    output = "```\nok\n`````\n\x1b[31mred\x1b[0m <b>\n"
    [fence] = [t for t in MD.parse(str(md_fence(output))) if t.type == "fence"]
    assert fence.content == "```\nok\n`````\nred <b>\n"


def test_an_override_that_forgets_to_escape_is_still_safe(tmp_path):
    """Output without a filter is neutralised: no HTML, no mention."""
    (tmp_path / "pr_body.md.j2").write_text("{{ r.agent.final_message }}\n", encoding="utf-8")
    ctx = ReportContext(overrides=load_overrides(tmp_path))
    text = render_pr_body(_result(agent=AgentInfo(0, 1, "s", "<img src=x> @octo")), ctx)
    assert _html_tokens(text) == []
    assert not _mentions(text)


# Pieces that mean something to Markdown, GFM tables, HTML or GitHub's mentions.
MARKUP_PIECES = [
    "|", "\\", "`", "```", "<", ">", "<!--", "-->", "<img src=x onerror=alert(1)>",
    "<details>", "</td>", "@octo/team", "@bob", "&#124;", "&lt;", "\n", "\r", "\r\n", "\t",
    "    ", "- ", "1. ", "# ", "[x]: /u", "---", "===", "*", "_", "a", " ", "\x00",
    "\x1b[31m", "\u2060", "é",
]  # fmt: skip
AGENT_TEXT = st.one_of(
    st.text(min_size=1, max_size=30),
    st.lists(st.sampled_from(MARKUP_PIECES), min_size=1, max_size=14).map("".join),
)


def _benign(text):
    # Same presence as the agent's text (empty, blank or not) so sections match.
    return "x" if text.strip() else text


def _adversarial_result(texts):
    title, message, path, old_path, reason, warning, model, command, tail = texts
    return _result(
        plan=PlanInfo("PLAN.md", title, 0, 1, 2),
        agent=AgentInfo(0, 1, "s", message),
        changes=(_change(path, "renamed", old_path), _change()),
        skipped_changes=({"path": path, "reason": reason},),
        warnings=(warning,),
        verify=VerifyInfo(command, 1, tail),
        cost={
            **_result().cost,
            "by_model": {model: _result().cost["by_model"]["claude-sonnet-4-5"]},
        },
        message=reason,
        status="failed",
        pr=_pr(),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(AGENT_TEXT, min_size=9, max_size=9))
def test_no_agent_string_changes_the_shape_of_a_report(texts):
    """Whatever the agent writes: same blocks, same table shapes, no HTML, no mention."""
    nasty = _adversarial_result(texts)
    plain = _adversarial_result([_benign(t) for t in texts])
    for render in (render_pr_body, render_step_summary, render_issue_comment):
        text, baseline = render(nasty, ReportContext(run_url=RUN_URL)), render(plain)
        assert _structure(text) == _structure(baseline)
        assert _html_tokens(text) == _html_tokens(baseline)
        assert not _mentions(text)


@given(AGENT_TEXT)
def test_table_cells_hold_no_bare_pipe_or_line_break(text):
    """Read as cmark-gfm scans a row, an escaped cell has no pipe that splits it."""
    for cell in (str(md_cell(text)), str(md_cell_code(text))):
        assert "\n" not in cell
        assert "\r" not in cell
        assert _gfm_bare_pipes(cell) == 0


def _gfm_bare_pipes(cell):
    # cmark-gfm's table scanner: a backslash and any ASCII punctuation is one escaped unit.
    punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    count, i = 0, 0
    while i < len(cell):
        if cell[i] == "\\" and i + 1 < len(cell) and cell[i + 1] in punctuation:
            i += 2
            continue
        count += cell[i] == "|"
        i += 1
    return count


def _structure(text):
    """Block tokens outside the agent's blockquote, and every table's rows and cells."""
    shape, depth = [], 0
    for token in MD.parse(text):
        if token.type == "blockquote_open":
            depth += 1
        if depth == 0 and token.type != "inline":
            shape.append((token.type, token.tag))
        if token.type == "blockquote_close":
            depth -= 1
    return shape


def _tables(text):
    tokens, found, heading = MD.parse(text), [], ""
    rows, cells = [], 0
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            heading = tokens[i + 1].content.split(" ")[0]
        elif token.type == "tr_close":
            rows.append(cells)
            cells = 0
        elif token.type in {"td_open", "th_open"}:
            cells += 1
        elif token.type == "table_close":
            found.append((heading, rows))
            rows = []
    return found


def _cells(text, heading):
    """The text of each cell of the table under a heading, code spans in backticks."""
    tokens, rows, current = MD.parse(text), [], ""
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            current = tokens[i + 1].content.split(" ")[0]
        elif token.type == "tr_open" and current == heading:
            rows.append([])
        elif (
            token.type == "inline"
            and current == heading
            and tokens[i - 1].type in {"td_open", "th_open"}
        ):
            rows[-1].append("".join(_shown(c) for c in token.children or ()))
    return rows


def _shown(token):
    return f"`{token.content}`" if token.type == "code_inline" else token.content


def _html_tokens(text):
    tokens = MD.parse(text)
    inline = [c for t in tokens if t.type == "inline" for c in t.children or ()]
    return [t.content for t in [*tokens, *inline] if t.type in {"html_block", "html_inline"}]


def _mentions(text):
    found = []
    for token in MD.parse(text):
        if token.type == "inline":
            joined = "".join(c.content if c.type == "text" else "\0" for c in token.children or ())
            found += MENTION.findall(joined)
    return found


# --- size limits ------------------------------------------------------------------------


def _long_message():
    return ("x" * 99 + "\n") * (3 * 2**20 // 100)  # 3 MiB, a line break every 100


def _quoted(text):
    section = _section(text, "What the agent says")
    return "\n".join(line[2:] for line in section.splitlines() if line.startswith("> "))


def test_a_3_mib_message_is_cut_to_fit_the_step_summary():
    """Under 1 MiB, saying so; the start of the message and every later section kept."""
    message = _long_message()
    result = _result(agent=AgentInfo(0, 1, "s", message))
    text = render_step_summary(result, ReportContext(run_url=RUN_URL))
    assert len(text.encode("utf-8")) <= MAX_SUMMARY_BYTES
    kept = _quoted(text)
    assert message.startswith(kept)
    assert f"{len(message) - len(kept):,} more characters are in `result.json`" in text
    assert "### Cost" in text
    assert "### Warnings" in text
    assert "**Shortened:** this job summary was cut" in text
    assert "`summary.md` and `result.json`" in text


def test_a_3_mib_message_is_cut_to_fit_a_pr_body():
    """GitHub's 65,536 characters: the body fits and points at the full report."""
    result = _result(agent=AgentInfo(0, 1, "s", _long_message()))
    text = render_pr_body(result, ReportContext(run_url=RUN_URL))
    assert len(text.encode("utf-8")) <= MAX_BODY_BYTES
    assert "**Shortened:**" in text
    assert f"job summary of the [workflow run]({RUN_URL})" in text
    assert _structure(text)[-1] == ("paragraph_close", "p")  # the note, outside any block


def test_summary_md_is_never_cut():
    """The full report keeps the whole message."""
    message = _long_message()
    text = render_summary(_result(agent=AgentInfo(0, 1, "s", message)))
    assert _quoted(text) == message.rstrip("\n")
    assert "Shortened" not in text


def test_thousands_of_files_are_listed_up_to_the_limit():
    """The table is cut by whole rows and says how many more there are."""
    changes = tuple(_change(f"pkg/{n:05d}/" + "d" * 200 + ".py") for n in range(30_000))
    text = render_step_summary(_result(changes=changes))
    assert len(text.encode("utf-8")) <= MAX_SUMMARY_BYTES
    shown = len(_table_rows(text, "Files changed (30,000)"))
    assert 0 < shown < len(changes)
    assert f"… and {len(changes) - shown:,} more files" in text


def test_an_override_that_writes_too_much_is_cut_hard(tmp_path):
    """Even a template that ignores the budget gives a body GitHub accepts."""
    (tmp_path / "pr_body.md.j2").write_text(
        "{% for i in range(100000) %}line {{ i }}\n{% endfor %}", encoding="utf-8"
    )
    text = render_pr_body(_result(), ReportContext(overrides=load_overrides(tmp_path)))
    assert len(text.encode("utf-8")) <= MAX_BODY_BYTES
    assert text.startswith("line 0\n")
    assert text.rstrip().endswith("`result-path`).")


# --- overrides --------------------------------------------------------------------------


def test_an_override_replaces_our_template_of_the_same_name(tmp_path):
    """pr_body.md.j2 in the folder is used for the PR body; the summary stays ours."""
    (tmp_path / "pr_body.md.j2").write_text(
        "Custom: {{ r.plan.title|md_inline }} for {{ r.cost.total_usd|usd }}\n", encoding="utf-8"
    )
    (tmp_path / "README.md").write_text("not a template", encoding="utf-8")
    ctx = ReportContext(overrides=load_overrides(tmp_path))
    assert render_pr_body(_result(), ctx) == "Custom: Add a health endpoint for $0.5102\n"
    assert "### Cost" in render_step_summary(_result(), ctx)


def test_an_overridden_partial_changes_every_report_that_includes_it(tmp_path):
    """Our templates include the user's _cost_table.md.j2 instead of ours."""
    (tmp_path / "_cost_table.md.j2").write_text(
        "COST {{ r.cost.total_usd|usd }}\n\n", encoding="utf-8"
    )
    ctx = ReportContext(overrides=load_overrides(tmp_path))
    for render in (render_pr_body, render_step_summary):
        text = render(_result(), ctx)
        assert "COST $0.5102" in text
        assert "### Cost" not in text


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ link.__globals__ }}",
        "{{ r.changes.append(1) }}",
        "{{ r.__class__.__subclasses__() }}",
    ],
)
def test_a_sandboxed_override_cannot_reach_python(tmp_path, payload):
    """Reaching Python's internals is refused before the run, naming the file and line."""
    (tmp_path / "pr_body.md.j2").write_text(f"ok\n{payload}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pr_body\.md\.j2:2: .*unsafe|pr_body\.md\.j2:2: .*"):
        load_overrides(tmp_path)


def test_security_errors_name_what_was_refused(tmp_path):
    """The message says the access is unsafe, so the user knows it is the sandbox."""
    (tmp_path / "pr_body.md.j2").write_text("{{ ''.__class__.__mro__ }}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_overrides(tmp_path)
    assert f"{tmp_path / 'pr_body.md.j2'}:1:" in str(caught.value)
    assert "unsafe" in str(caught.value)


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    """A broken template is refused at load with path:line."""
    (tmp_path / "_files_table.md.j2").write_text("ok\n\n{% if %}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / '_files_table.md.j2'}:3:")):
        load_overrides(tmp_path)


def test_an_unknown_variable_is_caught_on_a_sample_run(tmp_path):
    """StrictUndefined: a typo fails at load, before any money is spent."""
    (tmp_path / "issue_comment.md.j2").write_text("{{ r.stauts }}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"issue_comment\.md\.j2:1: .*stauts"):
        load_overrides(tmp_path)


def test_an_override_failing_on_the_real_run_falls_back_to_ours(tmp_path):
    """The run's report is not lost: ours is used, with a warning naming file and line."""
    (tmp_path / "pr_body.md.j2").write_text(
        'first\nsecond\n{% if r.run_id != "sample" %}{{ r.missing }}{% endif %}\n',
        encoding="utf-8",
    )
    ctx = ReportContext(overrides=load_overrides(tmp_path))
    text = render_pr_body(_result(), ctx)
    assert "### Cost" in text
    assert f"report template {tmp_path / 'pr_body.md.j2'}:3: " in text
    assert "the built-in template was used instead" in text


def test_override_folder_problems_are_config_errors(tmp_path):
    """Missing folder, no templates, a symlinked template: each refused, named."""
    with pytest.raises(ConfigError, match="is not a folder"):
        load_overrides(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"holds no \*\.j2 template"):
        load_overrides(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-secret"
    outside.write_text("runner secret", encoding="utf-8")
    (tmp_path / "pr_body.md.j2").symlink_to(outside)
    with pytest.raises(ConfigError, match="must be a regular file"):
        load_overrides(tmp_path)


def test_a_folder_outside_the_repository_is_refused(tmp_path):
    """With the repository as root, a path that leaves it (.. or a linked parent) is refused."""
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    (elsewhere / "pr_body.md.j2").write_text("x\n", encoding="utf-8")
    (repo / ".github").symlink_to(elsewhere)
    for folder in (repo / ".." / "elsewhere", repo / ".github"):
        with pytest.raises(ConfigError, match="outside the repository"):
            load_overrides(folder, root=repo)
    assert load_overrides(elsewhere, root=tmp_path).files == (("pr_body.md.j2", "x\n"),)


def test_overrides_are_a_snapshot(tmp_path):
    """Editing the folder after loading (as the agent's changes would) changes nothing."""
    template = tmp_path / "pr_body.md.j2"
    template.write_text("before\n", encoding="utf-8")
    ctx = ReportContext(overrides=load_overrides(tmp_path))
    template.write_text("after\n", encoding="utf-8")
    assert render_pr_body(_result(), ctx) == "before\n"


def test_a_template_that_is_not_utf8_is_refused(tmp_path):
    """Bytes that are not UTF-8 give a clear error, not a crash."""
    (tmp_path / "pr_body.md.j2").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="must be UTF-8"):
        load_overrides(tmp_path)


def test_the_result_dataclass_stays_unchanged_by_rendering():
    """Rendering with a cut never mutates the result (frozen data, copied views)."""
    result = _result(agent=AgentInfo(0, 1, "s", _long_message()))
    before = result.to_dict()
    render_pr_body(result)
    assert result.to_dict() == before
    assert replace(result) == result


@pytest.mark.parametrize(
    "text",
    ["Fixes #12", "closes: #3", "Resolved octo/app#7", "FIX   #1 and more"],
)
def test_closing_keywords_in_agent_text_cannot_close_issues(text):
    """The agent cannot make the PR close an issue on merge; a plain #12 stays a link."""
    quoted = str(md_quote(f"{text}; see #44"))
    assert not re.search(r"(?i)\b(close[sd]?|fix(e[sd])?|resolve[sd]?)\b:?\s+[\w./-]*#\d", quoted)
    assert "see #44" in quoted
