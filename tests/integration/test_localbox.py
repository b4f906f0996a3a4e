"""The local sandbox server, driven through the unmodified e2b SDK."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox
from e2b.exceptions import (
    FileNotFoundException,
    InvalidArgumentException,
    NotEnoughSpaceException,
    SandboxException,
)
from e2b.sandbox.commands.command_handle import CommandExitException

from claude_e2b.errors import SandboxStartError
from claude_e2b.sandbox.localbox import (
    LocalBoxHandle,
    LocalBoxOptions,
    kill_localbox,
    list_localboxes,
    start_localbox,
)
from claude_e2b.sandbox.localbox.launcher import SERVER_ENV, LocalBoxHost
from claude_e2b.sandbox.localbox.registry import pid_alive
from tests.integration.conftest import connect, set_faults

MB = 1024 * 1024
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the local sandbox needs Linux")


# --- helpers ---------------------------------------------------------------------


def marked_pids(mark: str) -> list[int]:
    """Host pids of processes whose environment carries LOCALBOX_MARK=mark."""
    needle = f"LOCALBOX_MARK={mark}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def descendants(pid: int) -> list[int]:
    """Host pids of every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def environ_of(pid: int) -> dict[str, str]:
    """A live process's environment, from /proc."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if item)


def start_marked(sandbox: Sandbox, mark: str, cmd: str = "sleep 1000 & sleep 1000"):
    handle = sandbox.commands.run(cmd, background=True, envs={"LOCALBOX_MARK": mark})
    assert wait_until(lambda: len(marked_pids(mark)) >= 2), "the command never started"
    return handle


# --- commands --------------------------------------------------------------------


def test_run_returns_stdout_stderr_and_exit_code(sdk_sandbox: Sandbox) -> None:
    """A foreground command reports its output streams and a zero exit code."""
    result = sdk_sandbox.commands.run("echo out; echo err >&2")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 0)


def test_non_zero_exit_raises_command_exit_exception(sdk_sandbox: Sandbox) -> None:
    """A non-zero exit raises CommandExitException carrying code and output."""
    with pytest.raises(CommandExitException) as caught:
        sdk_sandbox.commands.run("echo partial; exit 3")
    assert caught.value.exit_code == 3
    assert caught.value.stdout == "partial\n"


def test_cwd_and_envs_reach_the_command(sdk_sandbox: Sandbox) -> None:
    """cwd (absolute or relative to home) and envs are honoured; the server's env is not."""
    sdk_sandbox.files.make_dir("/home/user/repo/sub")
    result = sdk_sandbox.commands.run(
        "pwd; echo $GREETING", cwd="repo/sub", envs={"GREETING": "hi"}
    )
    assert result.stdout == "/home/user/repo/sub\nhi\n"
    assert sdk_sandbox.commands.run("pwd", cwd="/tmp").stdout == "/tmp\n"
    leaked = sdk_sandbox.commands.run("env").stdout
    assert "PYTHONPATH=" not in leaked  # the server has one (the launcher sets it)
    assert "HOME=/home/user" in leaked


@pytest.fixture
def root_box(localbox_host: LocalBoxHost) -> Iterator[LocalBoxHandle]:
    """A server started with allow_root (--allow-root-user)."""
    handle = start_localbox(LocalBoxOptions(allow_root=True), localbox_host)
    try:
        yield handle
    finally:
        handle.stop()


def test_user_and_root_are_different_uids(root_box: LocalBoxHandle) -> None:
    """ "user" runs unprivileged with home /home/user; "root" is uid 0 (when allowed)."""
    sdk_sandbox, localbox = connect(root_box), root_box
    user_id = int(sdk_sandbox.commands.run("id -u").stdout)
    root_id = int(sdk_sandbox.commands.run("id -u", user="root").stdout)
    assert root_id == 0
    assert user_id != 0
    assert sdk_sandbox.commands.run("whoami; echo $HOME").stdout == "user\n/home/user\n"
    sdk_sandbox.commands.run("touch /home/user/made-by-user")
    sdk_sandbox.files.write("/home/user/written.txt", "x")
    sdk_sandbox.commands.run("echo more >> /home/user/written.txt")  # editable by "user"
    if os.geteuid() == 0:
        assert (localbox.root / "home/user/made-by-user").stat().st_uid == user_id
        assert (localbox.root / "home/user/written.txt").stat().st_uid == user_id
    assert sdk_sandbox.files.get_info("/home/user/written.txt").owner == "user"


def test_background_command_kill_reaches_grandchildren(sdk_sandbox: Sandbox) -> None:
    """handle.kill() ends the whole command, grandchildren included; wait() reports it."""
    mark = uuid.uuid4().hex
    handle = start_marked(sdk_sandbox, mark)
    assert handle.kill() is True
    with pytest.raises(CommandExitException) as caught:
        handle.wait()
    assert caught.value.exit_code == -1
    assert wait_until(lambda: not marked_pids(mark))
    assert sdk_sandbox.commands.kill(handle.pid) is False


def test_connect_attaches_to_a_running_command(sdk_sandbox: Sandbox) -> None:
    """commands.connect gets the output of a command started earlier, and its end."""
    first = sdk_sandbox.commands.run(
        "sleep 0.5; for i in 1 2 3; do echo line $i; sleep 0.1; done", background=True
    )
    first.disconnect()
    assert [p.pid for p in sdk_sandbox.commands.list()] == [first.pid]
    result = sdk_sandbox.commands.connect(first.pid).wait()
    assert result.stdout == "line 1\nline 2\nline 3\n"


def test_stdin_is_delivered_and_closed(sdk_sandbox: Sandbox) -> None:
    """send_stdin feeds the command; close_stdin gives it EOF."""
    handle = sdk_sandbox.commands.run("cat", background=True, stdin=True)
    handle.send_stdin("hello ")
    sdk_sandbox.commands.send_stdin(handle.pid, b"world")
    handle.close_stdin()
    assert handle.wait().stdout == "hello world"


def test_output_is_streamed_as_it_is_produced(sdk_sandbox: Sandbox) -> None:
    """Lines printed 200 ms apart reach on_stdout spread out, not all at the end."""
    arrivals: list[float] = []
    sdk_sandbox.commands.run(
        "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.2; done",
        on_stdout=lambda _line: arrivals.append(time.monotonic()),
    )
    spread = arrivals[-1] - arrivals[0]
    print(f"\nstreaming: {len(arrivals)} chunks over {spread:.2f} s")
    assert len(arrivals) == 6
    assert spread >= 0.8


def test_claude_code_runs_as_user(sdk_sandbox: Sandbox) -> None:
    """A tool given at start (Claude Code) is on the PATH of "user"."""
    result = sdk_sandbox.commands.run("claude --version", timeout=60)
    assert "Claude Code" in result.stdout


# --- files -----------------------------------------------------------------------


def test_file_operations(sdk_sandbox: Sandbox) -> None:
    """write/read/exists/list/rename/make_dir/remove behave like envd's."""
    files = sdk_sandbox.files
    info = files.write("notes/a.txt", "alpha")
    assert info.path == "/home/user/notes/a.txt"
    assert files.read("/home/user/notes/a.txt") == "alpha"
    assert files.read("notes/a.txt", format="bytes") == bytearray(b"alpha")
    assert files.exists("notes/a.txt") is True
    assert files.exists("notes/missing") is False
    assert files.make_dir("notes/deep/er") is True
    assert files.make_dir("notes/deep/er") is False
    names = sorted(e.name for e in files.list("notes", depth=2))
    assert names == ["a.txt", "deep", "er"]
    assert files.rename("notes/a.txt", "notes/b.txt").path == "/home/user/notes/b.txt"
    assert files.read("notes/b.txt") == "alpha"
    files.remove("notes")
    assert files.exists("notes") is False
    with pytest.raises(FileNotFoundException):
        files.read("notes/b.txt")


def test_files_are_the_ones_commands_see(sdk_sandbox: Sandbox) -> None:
    """A file written through the API is at the same path for commands, and back."""
    sdk_sandbox.files.write_files([
        {"path": "/tmp/one.txt", "data": "1"},
        {"path": "/home/user/two.txt", "data": "2"},
    ])  # fmt: skip
    assert sdk_sandbox.commands.run("cat /tmp/one.txt ~/two.txt").stdout == "12"
    sdk_sandbox.commands.run("echo -n from-cmd > /home/user/three.txt")
    assert sdk_sandbox.files.read("/home/user/three.txt") == "from-cmd"


def test_paths_that_escape_are_refused(sdk_sandbox: Sandbox, localbox: LocalBoxHandle) -> None:
    """ ".." above / and symlinks out of the sandbox are refused; host files never served."""
    with pytest.raises(InvalidArgumentException):
        sdk_sandbox.files.read("../../../../etc/passwd")
    with pytest.raises(InvalidArgumentException):
        sdk_sandbox.files.write("../../../../tmp/evil", "x")
    sdk_sandbox.commands.run("ln -s ../../../../../../../etc/passwd ~/up; ln -s /etc/passwd ~/abs")
    with pytest.raises(InvalidArgumentException):
        sdk_sandbox.files.read("/home/user/up")
    # An absolute link resolves inside the sandbox's root, where there is no passwd.
    with pytest.raises(FileNotFoundException):
        sdk_sandbox.files.read("/home/user/abs")
    with pytest.raises(InvalidArgumentException):
        sdk_sandbox.files.remove("/home/user/up/x")
    assert not (localbox.root.parent / "evil").exists()


@pytest.mark.slow
def test_200_mb_up_and_down_with_bounded_memory(
    sdk_sandbox: Sandbox, localbox: LocalBoxHandle, tmp_path: Path
) -> None:
    """A 200 MB file goes up and down intact; server and client peak RSS stay < 100 MB."""
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with source.open("wb") as handle:
        for _ in range(200):
            chunk = os.urandom(MB)
            digest.update(chunk)
            handle.write(chunk)
    client = tmp_path / "client.py"
    client.write_text(
        textwrap.dedent(f"""
        import hashlib, json, resource, threading, time
        from e2b import Sandbox
        # Peak resident memory while the file moves, sampled every 2 ms. VmHWM also
        # counts the import-time peak of shared-library pages, which grows with a
        # warm page cache and says nothing about what the transfer holds.
        peak = {{"VmRSS": 0, "RssAnon": 0}}
        done = threading.Event()
        def sample():
            while not done.is_set():
                for line in open("/proc/self/status"):
                    key = line.split(":")[0]
                    if key in peak:
                        peak[key] = max(peak[key], int(line.split()[1]))
                time.sleep(0.002)
        sb = Sandbox.create(**{localbox.sdk_options()!r})
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with open({str(source)!r}, "rb") as f:
            sb.files.write("/home/user/big.bin", f)
        digest = hashlib.sha256()
        for chunk in sb.files.read("/home/user/big.bin", format="stream"):
            digest.update(chunk)
        done.set()
        sampler.join()
        print(json.dumps({{"sha256": digest.hexdigest(), "peak": peak,
                          "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
    """)
    )
    run = subprocess.run(
        [sys.executable, str(client)], capture_output=True, text=True, timeout=240, check=True
    )
    report = json.loads(run.stdout.strip().splitlines()[-1])
    status = Path(f"/proc/{localbox.pid}/status").read_text()
    server_kb = int(status.split("VmHWM:")[1].split()[0])
    client_kb = report["peak"]["VmRSS"]
    print(f"\n200 MB round trip: server peak RSS {server_kb / 1024:.1f} MB, client peak RSS "
          f"during the transfer {client_kb / 1024:.1f} MB (anonymous "
          f"{report['peak']['RssAnon'] / 1024:.1f} MB; VmHWM with imports "
          f"{report['maxrss_kb'] / 1024:.1f} MB)")  # fmt: skip
    assert report["sha256"] == digest.hexdigest()
    assert sdk_sandbox.commands.run("sha256sum big.bin").stdout.split()[0] == digest.hexdigest()
    assert server_kb < 100 * 1024
    assert 0 < client_kb < 100 * 1024


# --- lifetime and cleanup ----------------------------------------------------------


def test_kill_ends_everything_and_twice_is_fine(
    localbox: LocalBoxHandle, localbox_registry: Path
) -> None:
    """kill_localbox (by id, from the registry) kills every process, root and entry; idempotent."""
    mark = uuid.uuid4().hex
    start_marked(connect(localbox), mark)
    assert [b.sandbox_id for b in list_localboxes(localbox_registry)] == [localbox.sandbox_id]
    assert kill_localbox(localbox.sandbox_id, localbox_registry) is True
    assert wait_until(lambda: not pid_alive(localbox.pid))
    assert marked_pids(mark) == []
    assert not localbox.root.exists()
    assert list_localboxes(localbox_registry) == []
    assert kill_localbox(localbox.sandbox_id, localbox_registry) is False
    localbox.stop()
    localbox.stop()


def test_stop_kills_everything(localbox: LocalBoxHandle) -> None:
    """handle.stop() (SIGTERM to the server) kills the sandbox's processes and root."""
    mark = uuid.uuid4().hex
    start_marked(connect(localbox), mark)
    localbox.stop()
    assert not pid_alive(localbox.pid)
    assert wait_until(lambda: not marked_pids(mark))
    assert not localbox.root.exists()


def test_lifetime_end_kills_everything(localbox_host: LocalBoxHost) -> None:
    """The server ends itself at the end of its lifetime, and can be extended first."""
    handle = start_localbox(LocalBoxOptions(lifetime_s=2), localbox_host)
    try:
        sandbox = connect(handle)
        sandbox.set_timeout(3)
        assert sandbox.get_info().end_at.timestamp() == pytest.approx(time.time() + 3, abs=1)
        mark = uuid.uuid4().hex
        start_marked(sandbox, mark)
        assert wait_until(lambda: not pid_alive(handle.pid), timeout=20)
        assert marked_pids(mark) == []
        assert not handle.root.exists()
    finally:
        handle.stop()


def test_parent_death_kills_everything(localbox_registry: Path, tmp_path: Path) -> None:
    """When the process that launched the server dies (SIGKILL), the sandbox ends."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent("""
        import json, os, sys, time
        from pathlib import Path
        from claude_e2b.sandbox.localbox import LocalBoxOptions, start_localbox
        from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
        h = start_localbox(LocalBoxOptions(), LocalBoxHost(Path(sys.argv[1]), os.environ))
        print(json.dumps({"sdk": h.sdk_options(), "pid": h.pid, "root": str(h.root)}), flush=True)
        time.sleep(600)
    """)
    )
    parent = subprocess.Popen(
        [sys.executable, str(script), str(localbox_registry)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        info = json.loads(parent.stdout.readline())
        mark = uuid.uuid4().hex
        sandbox = Sandbox.create(**info["sdk"])
        start_marked(sandbox, mark)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_until(lambda: not pid_alive(info["pid"]), timeout=20)
        assert marked_pids(mark) == []
        assert not Path(info["root"]).exists()
    finally:
        parent.kill()
        parent.wait()


def test_info_endpoint(localbox: LocalBoxHandle) -> None:
    """GET /localbox/info (with the API key) describes the sandbox."""
    answer = localbox.call("GET", "/localbox/info")
    answer.raise_for_status()
    info = answer.json()
    assert info["sandbox_id"] == localbox.sandbox_id
    assert info["sandbox_id"].startswith("local-")
    assert info["metadata"] == {"test": "yes"}
    assert info["pid"] == localbox.pid
    assert info["root"] == str(localbox.root)
    assert info["end_at"] > info["started_at"]


def test_server_inherits_no_secret_of_its_caller(localbox_registry: Path) -> None:
    """Only allow-listed variables reach the server and its helpers: no token, no key."""
    canary = f"canary-{uuid.uuid4().hex}"
    secrets = ("GITHUB_TOKEN", "E2B_API_KEY", "AWS_SECRET_ACCESS_KEY", "ANTHROPIC_API_KEY")
    caller = {**os.environ, "LC_TIME": "C.UTF-8", **dict.fromkeys(secrets, canary)}
    handle = start_localbox(LocalBoxOptions(), LocalBoxHost(localbox_registry, caller))
    try:
        helpers = descendants(handle.pid)
        server = environ_of(handle.pid)
        found = [server, *(environ_of(pid) for pid in helpers)]
        leaked = [name for env in found for name, value in env.items() if value == canary]
        assert connect(handle).commands.run("echo up").stdout == "up\n"
    finally:
        handle.stop()
    if os.geteuid() == 0:
        assert helpers, "the namespace holder (unshare, nsinit) should run below the server"
    assert leaked == []
    assert all(name in SERVER_ENV or name.startswith("LC_") for name in server)
    assert (server["PATH"], server["LC_TIME"]) == (os.environ["PATH"], "C.UTF-8")


def test_start_failure_raises_sandbox_start_error(
    localbox_host: LocalBoxHost, tmp_path: Path
) -> None:
    """A server that cannot start raises SandboxStartError with its stderr."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SandboxStartError) as caught:
        start_localbox(LocalBoxOptions(root=blocker / "root"), localbox_host, ready_timeout=10)
    assert "Error" in str(caught.value)


def test_help_works() -> None:
    """python -m claude_e2b.sandbox.localbox --help explains itself."""
    run = subprocess.run(
        [sys.executable, "-m", "claude_e2b.sandbox.localbox", "--help"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert "--lifetime" in run.stdout


# --- faults ----------------------------------------------------------------------


def test_fault_dropped_output_stream(sdk_sandbox: Sandbox, localbox: LocalBoxHandle) -> None:
    """A dropped stream fails the SDK's wait, while the command keeps running."""
    set_faults(localbox, drop_output_after_bytes=2000)
    handle = sdk_sandbox.commands.run(
        "for i in $(seq 1 100); do echo line-$i-0123456789; done; sleep 30", background=True
    )
    with pytest.raises(Exception) as caught:
        handle.wait()
    assert not isinstance(caught.value, CommandExitException)
    assert handle.pid in [p.pid for p in sdk_sandbox.commands.list()]
    assert sdk_sandbox.commands.kill(handle.pid) is True
    # The fault fired once: the next stream is whole.
    assert sdk_sandbox.commands.run("seq 1 500").stdout.count("\n") == 500


def test_fault_upload_errors(sdk_sandbox: Sandbox, localbox: LocalBoxHandle) -> None:
    """The next matching upload gets HTTP 500; others and later ones succeed."""
    set_faults(localbox, upload_errors=1, upload_error_glob="/home/user/fail*")
    sdk_sandbox.files.write("/home/user/ok.txt", "fine")
    with pytest.raises(SandboxException, match="500"):
        sdk_sandbox.files.write("/home/user/fail.txt", "x" * 100_000)
    sdk_sandbox.files.write("/home/user/fail.txt", "now fine")
    assert sdk_sandbox.files.read("/home/user/fail.txt") == "now fine"


def test_fault_slow_answers(sdk_sandbox: Sandbox, localbox: LocalBoxHandle) -> None:
    """delay_s delays every envd answer."""
    set_faults(localbox, delay_s=0.5)
    started = time.monotonic()
    sdk_sandbox.files.exists("/home/user")
    assert time.monotonic() - started >= 0.5
    set_faults(localbox, delay_s=0)


def test_fault_unhealthy(sdk_sandbox: Sandbox, localbox: LocalBoxHandle) -> None:
    """unhealthy makes the SDK see the sandbox as not running."""
    assert sdk_sandbox.is_running() is True
    set_faults(localbox, unhealthy=True)
    assert sdk_sandbox.is_running() is False


def test_fault_download_errors(sdk_sandbox: Sandbox, localbox: LocalBoxHandle) -> None:
    """Coming file reads get the listed statuses, one each, only where the glob matches."""
    sdk_sandbox.files.write("/home/user/wanted.txt", "content")
    set_faults(localbox, download_errors=[500, 503], download_error_glob="*/wanted.txt")
    sdk_sandbox.files.write("/home/user/other.txt", "other")
    assert sdk_sandbox.files.read("/home/user/other.txt") == "other"
    with pytest.raises(SandboxException, match="500"):
        sdk_sandbox.files.read("/home/user/wanted.txt")
    with pytest.raises(SandboxException, match="503"):
        sdk_sandbox.files.read("/home/user/wanted.txt")
    assert sdk_sandbox.files.read("/home/user/wanted.txt") == "content"


def test_fault_upload_statuses_and_disk_full(
    sdk_sandbox: Sandbox, localbox: LocalBoxHandle
) -> None:
    """upload_error_status answers its statuses in turn; a full disk answers envd's 507."""
    set_faults(localbox, upload_error_status=[503], disk_full_glob="/home/user/full/*")
    with pytest.raises(SandboxException, match="503"):
        sdk_sandbox.files.write("/home/user/a.txt", "a")
    sdk_sandbox.files.write("/home/user/a.txt", "a")
    with pytest.raises(NotEnoughSpaceException, match="not enough disk space"):
        sdk_sandbox.files.write("/home/user/full/b.txt", "b")
    with pytest.raises(NotEnoughSpaceException):
        sdk_sandbox.files.write("/home/user/full/b.txt", "b")


def test_fault_dropped_download(sdk_sandbox: Sandbox, localbox: LocalBoxHandle) -> None:
    """The next download is cut after the given bytes; the one after is whole."""
    data = os.urandom(2 * MB)
    sdk_sandbox.files.write("/home/user/big.bin", data)
    set_faults(localbox, drop_download_after_bytes=MB // 2)
    with pytest.raises(httpx.TransportError):
        b"".join(sdk_sandbox.files.read("/home/user/big.bin", format="stream"))
    assert bytes(sdk_sandbox.files.read("/home/user/big.bin", format="bytes")) == data


def test_fault_kill_after(
    sdk_sandbox: Sandbox, localbox: LocalBoxHandle, localbox_registry: Path
) -> None:
    """kill_after_s ends the sandbox as E2B's kill does: processes, root and server gone."""
    handle = sdk_sandbox.commands.run("sleep 60", background=True)
    set_faults(localbox, kill_after_s=0.3)
    assert wait_until(lambda: not localbox.running)
    with pytest.raises(CommandExitException):
        handle.wait()
    assert not localbox.root.exists()
    assert list_localboxes(localbox_registry) == []


def test_fault_values_are_checked(localbox: LocalBoxHandle) -> None:
    """A status list must hold HTTP error statuses; a bad one is a 400."""
    for bad in ([200], "500", [True], [600]):
        answer = localbox.call("POST", "/localbox/faults", {"download_errors": bad})
        assert answer.status_code == 400, bad
    assert set_faults(localbox)["download_errors"] == []


def test_faults_given_at_start_and_rejected_when_unknown(localbox_host: LocalBoxHost) -> None:
    """Faults can be set at start; unknown fault keys are a 400."""
    options = LocalBoxOptions(faults={"upload_errors": 1}, test_faults=True)
    handle = start_localbox(options, localbox_host)
    try:
        with pytest.raises(SandboxException, match="500"):
            connect(handle).files.write("/tmp/x", "x")
        with pytest.raises(httpx.HTTPStatusError) as caught:
            set_faults(handle, no_such_fault=1)
        assert caught.value.response.status_code == 400
    finally:
        handle.stop()
