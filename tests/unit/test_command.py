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
    argv = shlex.split(shell.removeprefix("exec ").rsplit(" < ", 1)[0])
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
        claude_bin="printf", model=nasty, repo_dir="/r", prompt_path=str(prompt), plan_file=None
    )
    # printf '%s\0' would need a format; use the argv of a python that echoes it back.
    script = cmd.shell().replace(
        "exec printf", "exec python3 -c 'import sys; print(sys.argv[7])'", 1
    )
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout == nasty + "\n"
