import shlex
import subprocess
import time
from pathlib import Path

from claude_e2b.agent.command import EXIT_MARKER, AgentCommand, build_command, follow_agent
from claude_e2b.agent.runner import exit_report

# A python that prints the argument after --model and its stdin stands in for Claude Code.
ECHO = (
    "python3",
    "-c",
    "import sys; print(sys.argv[sys.argv.index('--model') + 1]); print(sys.stdin.read())",
)


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
    launch = cmd.launch("t0k3n")
    assert f"{shlex.join(cmd.argv)} < '/tmp/p q.md' >> /tmp/claude-e2b/agent.out" in launch
    argv = list(cmd.argv)
    for flag in ("-p", "--verbose", "--dangerously-skip-permissions"):
        assert flag in argv
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert argv[argv.index("--max-turns") + 1] == "7"
    assert argv[argv.index("--max-budget-usd") + 1] == "1.5000"
    assert "PLAN.md" in argv[argv.index("--append-system-prompt") + 1]
    assert cmd.output_path == "/tmp/claude-e2b/agent.out"


def nasty_command(tmp_path: Path) -> tuple[AgentCommand, str]:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("the prompt\n")
    nasty = 'it\'s $(rm -rf /) `id` "q"\nline'
    cmd = build_command(
        claude_bin="echo-model",
        model=nasty,
        repo_dir="/r",
        prompt_path=str(prompt),
        plan_file=None,
        pid_path=str(tmp_path / "dir with space" / "pid file"),
    )
    argv = (*ECHO, *cmd.argv[1:])
    return AgentCommand(argv, cmd.prompt_path, cmd.cwd, cmd.pid_path), nasty


def bash(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )


def test_launch_and_follow_survive_bash(tmp_path):
    """Every argument arrives byte for byte; the reader gives the output from any offset."""
    cmd, nasty = nasty_command(tmp_path)
    launched = bash(cmd.launch("tok"))
    assert launched.returncode == 0, launched.stderr
    printed = nasty + "\nthe prompt\n\n"
    assert Path(cmd.output_path).read_text() == printed
    assert Path(cmd.pid_path).read_text().strip().isdigit()
    whole = bash(cmd.follow("tok", 0))
    assert (whole.returncode, whole.stdout) == (0, printed)
    assert exit_report(whole.stderr) == (0, "")
    rest = bash(cmd.follow("tok", 10))
    assert rest.stdout == printed[10:]
    anyone = bash(follow_agent(str(Path(cmd.pid_path).parent), 0))
    assert (anyone.stdout, exit_report(anyone.stderr)) == (printed, (0, ""))


def test_the_exit_code_and_stderr_tail_come_after_the_marker(tmp_path):
    """A failing agent: its exit code and its stderr reach the reader's stderr."""
    cmd = AgentCommand(
        ("sh", "-c", "echo out; echo oops >&2; exit 7"),
        str(tmp_path / "prompt"),
        str(tmp_path),
        str(tmp_path / "agent.pid"),
    )
    (tmp_path / "prompt").write_text("")
    assert bash(cmd.launch("a")).returncode == 7
    follow = bash(cmd.follow("a", 0))
    assert follow.stdout == "out\n"
    assert follow.stderr.startswith(f"{EXIT_MARKER} 7\n")
    assert exit_report(follow.stderr) == (7, "oops\n")
    assert exit_report("tail: no file\n") == (None, "tail: no file\n")


def test_the_reader_follows_until_the_agent_ends_and_kill_ends_its_group(tmp_path):
    """A running agent is followed live; kill ends it and its children, the launcher records 137."""
    script = "echo started; sleep 30 & sleep 30"
    cmd = AgentCommand(
        ("bash", "-c", script),
        str(tmp_path / "prompt"),
        str(tmp_path),
        str(tmp_path / "agent.pid"),
    )
    (tmp_path / "prompt").write_text("")
    launcher = subprocess.Popen(["bash", "-c", cmd.launch("k")])
    reader = subprocess.Popen(
        ["bash", "-c", cmd.follow("k", 0)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == b"started\n"
        assert reader.poll() is None
        group = int(Path(cmd.pid_path).read_text())
        assert bash(cmd.kill()).returncode == 0
        assert launcher.wait(timeout=10) == 137
        out, err = reader.communicate(timeout=10)
    finally:
        launcher.kill()
        reader.kill()
    assert out == b""
    assert exit_report(err.decode()) == (137, "")
    assert alive_in_group(group) == []


def alive_in_group(group: int) -> list[str]:
    """Processes of the group that still live (a killed one may linger as a zombie)."""
    deadline = time.monotonic() + 5
    while True:
        table = bash("ps -e -o pgid=,stat=,pid=").stdout.splitlines()
        alive = [row for row in table if row.split()[0] == str(group) and row.split()[1][0] != "Z"]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)
