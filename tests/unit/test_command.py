import shlex
import subprocess

from claude_e2b.agent.command import build_command


def test_prompt_travels_on_stdin_never_in_the_command():
    """The prompt file is redirected to stdin; the argv is quoted whole."""
    cmd = build_command(
        claude_bin="claude",
        model="m",
        repo_dir="/home/user/repo",
        prompt_path="/tmp/p q.md",
        plan_file="PLAN.md",
        max_turns=7,
        budget_usd=1.5,
    )
    shell = cmd.shell()
    assert shell.endswith("< '/tmp/p q.md'")
    assert shell.startswith("echo $$ > /tmp/claude-e2b/agent.pid && exec ")
    argv = shlex.split(shell.split(" && exec ", 1)[1].rsplit(" < ", 1)[0])
    assert argv == list(cmd.argv)
    for flag in ("-p", "--verbose", "--dangerously-skip-permissions"):
        assert flag in argv
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert argv[argv.index("--max-turns") + 1] == "7"
    assert argv[argv.index("--max-budget-usd") + 1] == "1.5000"
    assert "PLAN.md" in argv[argv.index("--append-system-prompt") + 1]


def test_shell_line_survives_bash(tmp_path):
    """bash receives every argument byte for byte, whatever it contains."""
    prompt = tmp_path / "prompt.md"
    prompt.write_text("x")
    nasty = 'it\'s $(rm -rf /) `id` "q"\nline'
    cmd = build_command(
        claude_bin="echo-model",
        model=nasty,
        repo_dir="/r",
        prompt_path=str(prompt),
        plan_file=None,
        pid_path=str(tmp_path / "pid file"),
    )
    # A python that prints the argument after --model stands in for Claude Code.
    echo = "python3 -c 'import sys; print(sys.argv[sys.argv.index(\"--model\") + 1])'"
    script = cmd.shell().replace("exec echo-model", f"exec {echo}", 1)
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout == nasty + "\n"
    assert (tmp_path / "pid file").read_text().strip().isdigit()
