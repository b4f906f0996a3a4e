from claude_e2b.agent.events import AssistantEvent, BrokenLine, ResultEvent, ToolUse
from claude_e2b.agent.monitor import describe, describe_tool


def _assistant(text="", tools=()):
    return AssistantEvent("m1", "model", text, tuple(tools), {}, raw={})


def test_tool_lines_are_short_and_relative():
    """File tools show the path relative to the repository; Bash shows the command."""
    cwd = "/home/user/repo"
    assert describe_tool(ToolUse("1", "Edit", {"file_path": f"{cwd}/src/app.py"}), cwd) == (
        "Edit src/app.py"
    )
    assert describe_tool(ToolUse("2", "Bash", {"command": "pytest -q\n  -x"}), cwd) == (
        "$ pytest -q -x"
    )
    assert describe_tool(ToolUse("3", "Grep", {"pattern": "TODO"}), cwd) == "Grep TODO"
    assert describe_tool(ToolUse("4", "Mystery", {}), cwd) == "Mystery"


def test_assistant_text_is_one_trimmed_line():
    """Long assistant text is flattened and cut with an ellipsis."""
    lines = describe(_assistant("word " * 100))
    assert len(lines) == 1
    assert lines[0].endswith("…")
    assert "\n" not in lines[0]


def test_result_and_broken_lines():
    """The result line shows turns and cost; a broken line is mentioned."""
    result = ResultEvent("success", False, 3, "s", "ok", 0.5, {}, {}, 10, raw={})
    assert describe(result) == ["Claude Code finished: success, 3 turns, cost $0.5000"]
    assert "skipped" in describe(BrokenLine("x", "bad"))[0]
