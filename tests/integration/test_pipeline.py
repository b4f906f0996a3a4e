"""run_pipeline in-process: the real Claude Code CLI in the local sandbox, on a real checkout."""

from __future__ import annotations

import functools
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from claude_e2b import pipeline
from claude_e2b.collect import CollectPolicy
from claude_e2b.config import Credentials, Overrides, build_run_config
from claude_e2b.errors import SandboxError, SandboxStartError
from claude_e2b.pipeline import run_pipeline
from claude_e2b.plan import load_plan
from claude_e2b.retrieve import apply_downloaded, download_policy, fetch_from_sandbox
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost, list_localboxes
from claude_e2b.sandbox.session import SandboxSession, SandboxSpec, attach_session, open_session
from claude_e2b.sync import screen, secrets
from tests.gitrepo import commit_all, git, repack
from tests.stand_ins.anthropic_server import ScriptedAnthropic

SCENARIO = Path(__file__).parents[1] / "stand_ins" / "scenarios" / "add_edit_delete.yaml"
KEY = "sk-ant-api03-pipeline-" + "5eed" * 10


def make_repo(path: Path) -> Path:
    path.mkdir()
    (path / "README.md").write_text("# Demo\n\nHello world.\n")
    (path / "obsolete.txt").write_text("remove me\n")
    (path / "PLAN.md").write_text(
        "---\ntitle: In-process plan\nverify: test -f hello.py\n---\n"
        "Add hello.py.\n\n- [ ] Add hello.py\n- [ ] Later\n"
    )
    git(path, "init", "-q", "-b", "main")
    commit_all(path, "init")
    return path


def run_config(repo: Path, out: Path, base_url: str, claude_bin: Path):
    return build_run_config(
        load_plan(repo / "PLAN.md"),
        Overrides(backend="local"),
        repo_dir=repo,
        output_dir=out,
        credentials=Credentials(anthropic_api_key=KEY, anthropic_base_url=base_url),
        local_tools={"claude": claude_bin},
        run_id="run-in-process",
    )


class Opened:
    """A session factory on this test's local host that remembers the sessions it opened."""

    def __init__(self, host: LocalBoxHost) -> None:
        self.host = host
        self.sessions: list[SandboxSession] = []

    def __call__(self, spec: SandboxSpec) -> SandboxSession:
        session = open_session(spec, self.host)
        self.sessions.append(session)
        return session


def test_pipeline_applies_the_agents_changes(
    tmp_path, localbox_registry, localbox_host, claude_bin
):
    """The whole run in one process: changes applied, verify run, cost exact, sandbox gone."""
    repo = make_repo(tmp_path / "repo")
    opened = Opened(localbox_host)
    with ScriptedAnthropic(SCENARIO) as api:
        config = run_config(repo, tmp_path / "out", api.url, claude_bin)
        result = run_pipeline(config, opened)
    assert result.status == "completed", result.message
    assert 'print("Hello from the sandbox")' in (repo / "hello.py").read_text()
    assert not (repo / "obsolete.txt").exists()
    assert {c["path"]: c["status"] for c in result.changes} == {
        "hello.py": "added",
        "README.md": "modified",
        "obsolete.txt": "deleted",
        "PLAN.md": "modified",
    }
    assert result.verify is not None
    assert (result.verify.command, result.verify.exit_code) == ("test -f hello.py", 0)
    assert (result.plan.tasks_done_before, result.plan.tasks_done_after) == (0, 1)
    assert result.cost["claude_usd"] > 0
    assert result.timing.upload_s > 0
    assert result.timing.agent_s > 0
    assert result.timing.download_s > 0
    assert result.sandbox.id == opened.sessions[0].sandbox_id
    assert not opened.sessions[0].is_alive()
    assert list(localbox_registry.glob("*.json")) == []
    transcript = (tmp_path / "out" / "transcript.jsonl").read_text().splitlines()
    assert json.loads(transcript[-1])["type"] == "result"


def test_claude_code_is_looked_for_while_the_files_go_up(tmp_path, localbox_host, claude_bin):
    """The check for Claude Code in the sandbox runs beside the upload, not after it."""
    repo = make_repo(tmp_path / "repo")
    with ScriptedAnthropic(SCENARIO) as api, capture_logs() as logs:
        config = run_config(repo, tmp_path / "out", api.url, claude_bin)
        result = run_pipeline(config, Opened(localbox_host))
    assert result.status == "completed", result.message
    events = [
        "claude-check" if e.get("command", "").startswith("command -v claude") else e["event"]
        for e in logs
    ]
    assert events.count("claude-check") == 1
    assert events.index("claude-check") < events.index("upload.done")


def test_failed_download_keeps_the_sandbox_for_a_later_download(
    tmp_path, localbox_registry, localbox_host, claude_bin
):
    """The changes cannot be fetched while the sandbox lives: the run fails but keeps what
    the agent did cost, leaves the sandbox to its lifetime and says how to fetch the work;
    fetched later (another session, as `claude-e2b download` does), it applies whole."""
    repo = make_repo(tmp_path / "repo")
    opened = Opened(localbox_host)

    def faulty(spec: SandboxSpec) -> SandboxSession:
        session = opened(spec)

        def broken(path: str, **_kwargs: object):
            raise SandboxError(f"injected: cannot read {path}")

        # Fault injection on the one call that brings the archive back.
        session.read_stream = broken  # type: ignore[method-assign]
        return session

    quick = CollectPolicy(deadline_s=2.0, first_delay_s=0.2, max_delay_s=0.5)
    with ScriptedAnthropic(SCENARIO) as api:
        config = run_config(repo, tmp_path / "out", api.url, claude_bin)
        result = run_pipeline(config, faulty, collect=quick)
    assert result.status == "failed"
    assert "injected: cannot read /tmp/claude-e2b/changes.tar.zst" in result.message
    assert "claude-e2b download run-in-process --apply" in result.message
    assert result.agent.num_turns >= 5
    assert result.cost["claude_usd"] > 0
    assert result.verify is not None
    assert result.verify.exit_code == 0
    assert result.changes == ()
    assert not (repo / "hello.py").exists()
    kept = opened.sessions[0]
    try:
        assert kept.is_alive()
        (entry,) = list_localboxes(localbox_registry)
        with attach_session(
            "local", kept.sandbox_id, registry_dir=localbox_registry, local_api_key=entry.api_key
        ) as again:
            fetched = fetch_from_sandbox(again, None, tmp_path / "later", 10**8)
        applied = apply_downloaded(fetched, repo, download_policy(repo, [KEY]))
        assert {c.path for c in applied.applied} == {
            "hello.py", "README.md", "obsolete.txt", "PLAN.md"
        }  # fmt: skip
        assert (repo / "hello.py").exists()
    finally:
        kept.kill()
    assert not kept.is_alive()


def test_blocked_run_uploads_nothing_and_kills_its_sandbox(
    tmp_path, localbox_registry, localbox_host, claude_bin
):
    """With `secrets: fail` and a secret in the checkout, nothing goes up: the sandbox,
    created while the scan ran, is killed before anything is written to it."""
    repo = make_repo(tmp_path / "repo")
    plan = repo / "PLAN.md"
    plan.write_text(plan.read_text().replace("title:", "secrets: fail\ntitle:"))
    (repo / "config.py").write_text('TOKEN = "ghp_' + "A1b2C3d4E5" * 3 + 'abcdef"\n')
    commit_all(repo, "secret")
    opened = Opened(localbox_host)
    result = run_pipeline(
        run_config(repo, tmp_path / "out", "http://127.0.0.1:9", claude_bin), opened
    )
    assert result.status == "blocked"
    assert len(opened.sessions) <= 1
    for session in opened.sessions:
        assert not session.is_alive()
    assert list(localbox_registry.glob("*.json")) == []
    assert result.sandbox.id == ""  # the run never took it
    assert result.warnings
    assert all(w.startswith("secret found before upload: config.py:1:") for w in result.warnings)


class Watched(Opened):
    """Sessions whose uploads are watched: each file written goes into ``events`` as
    ("write", path, bytes of an .entries or .idx file else None), and ``first_pack`` is
    set once a .pack has gone."""

    def __init__(self, host: LocalBoxHost, events: list[tuple[object, ...]]) -> None:
        super().__init__(host)
        self.events = events
        self.first_pack = threading.Event()

    def __call__(self, spec: SandboxSpec) -> SandboxSession:
        session = super().__call__(spec)
        self.events.append(("opened",))
        real_write = session.write_file

        def write_file(path, data, *args, **kwargs):  # type: ignore[no-untyped-def]
            content = None
            if path.endswith((".entries", ".idx")):
                content = data.read()
                data.seek(0)
            self.events.append(("write", path, content))
            result = real_write(path, data, *args, **kwargs)
            if path.endswith(".pack"):
                self.first_pack.set()
            return result

        session.write_file = write_file  # type: ignore[method-assign]
        return session


def hold_scan(monkeypatch, rel: str, until: threading.Event, events: list) -> None:  # type: ignore[no-untyped-def]
    """The scan reads ``rel`` only once ``until`` is set, and a second later (a window in
    which an upload that did not wait for the scan would send it); packs of one blob."""
    real_read = secrets._open_and_read

    def holding_read(path, name, reader, start):  # type: ignore[no-untyped-def]
        if name == rel:
            until.wait(30)
            time.sleep(1.0)
            events.append(("held-read", until.is_set()))
        return real_read(path, name, reader, start)

    monkeypatch.setattr(secrets, "_open_and_read", holding_read)
    monkeypatch.setattr(
        pipeline, "upload_repository", functools.partial(pipeline.upload_repository, group_bytes=1)
    )


def entries_names(listing: bytes) -> frozenset[str]:
    return frozenset(r.partition(b"\t")[2].decode() for r in listing.split(b"\0")[:-1])


def test_the_upload_begins_during_the_scan_and_no_file_leaves_before_its_scan(
    tmp_path, localbox_registry, localbox_host, claude_bin, monkeypatch
):
    """The sandbox starts while the files are scanned, and the upload begins before the
    scan ends: each pack leaves once the scan has passed every file it names (the scan
    of the last file waits for the first pack), the tar of the other files after the
    scan's end."""
    events: list[tuple[object, ...]] = []
    opened = Watched(localbox_host, events)
    hold_scan(monkeypatch, "zz-late.txt", opened.first_pack, events)
    real_scan_tree = screen.scan_tree

    def recording_scan_tree(scanner, root, paths, **kwargs):  # type: ignore[no-untyped-def]
        paths = list(paths)

        def progress(n, hits):  # type: ignore[no-untyped-def]
            events.append(("scanned", frozenset(paths[:n])))
            kwargs["progress"](n, hits)

        return real_scan_tree(scanner, root, paths, **{**kwargs, "progress": progress})

    monkeypatch.setattr(screen, "scan_tree", recording_scan_tree)
    repo = make_repo(tmp_path / "repo")
    (repo / "a-early.txt").write_text("early text line\n" * 20_000)  # a scan region of its own
    (repo / "zz-late.txt").write_text("late\n")
    commit_all(repo, "more")
    repack(repo)  # only packed objects travel as objects
    (repo / "README.md").write_text("# Demo\n\nEdited: it takes the tar.\n")
    with ScriptedAnthropic(SCENARIO) as api:
        result = run_pipeline(run_config(repo, tmp_path / "out", api.url, claude_bin), opened)
    assert result.status == "completed", result.message
    held = events.index(("held-read", True))  # the first pack left before the scan's end
    assert events.index(("opened",)) < held
    scanned: frozenset[object] = frozenset()
    packs, late, chunks = 0, [], 0
    for n, event in enumerate(events):
        if event[0] == "scanned":
            scanned = event[1]  # type: ignore[assignment]
        elif event[0] == "write" and str(event[1]).endswith(".entries"):
            names = entries_names(event[2])  # type: ignore[arg-type]
            assert names <= scanned, f"{names - scanned} sent before the scan passed them"
            packs += 1
            late += [n] if "zz-late.txt" in names else []
        elif event[0] == "write" and "/chunk-" in str(event[1]):
            assert "zz-late.txt" in scanned  # the tar after the whole scan
            chunks += 1
    assert packs >= 3
    assert late
    assert late[0] > held
    assert chunks


def test_a_secret_found_during_the_upload_blocks_the_run_and_never_leaves(
    tmp_path, localbox_registry, localbox_host, claude_bin, monkeypatch
):
    """`secrets: fail`, the upload under way when the scan reaches a secret: the run is
    blocked, the secret's file named in no pack and its blob sent nowhere, the sandbox
    killed, no agent run."""
    events: list[tuple[object, ...]] = []
    opened = Watched(localbox_host, events)
    hold_scan(monkeypatch, "zz-config.py", opened.first_pack, events)
    repo = make_repo(tmp_path / "repo")
    plan = repo / "PLAN.md"
    plan.write_text(plan.read_text().replace("title:", "secrets: fail\ntitle:"))
    (repo / "a-early.txt").write_text("early text line\n" * 20_000)
    secret = 'TOKEN = "ghp_' + "A1b2C3d4E5" * 3 + 'abcdef"\n'
    (repo / "zz-config.py").write_text(secret)
    commit_all(repo, "secret at the end")
    repack(repo)
    blob = git(repo, "rev-parse", "HEAD:zz-config.py")
    result = run_pipeline(
        run_config(repo, tmp_path / "out", "http://127.0.0.1:9", claude_bin), opened
    )
    assert result.status == "blocked", result.message
    assert "secrets: fail" in result.message
    writes = [(str(e[1]), e[2]) for e in events if e[0] == "write"]
    assert any(path.endswith(".pack") for path, _ in writes)  # the upload had begun
    listed = [entries_names(c) for p, c in writes if p.endswith(".entries")]  # type: ignore[arg-type]
    assert listed
    assert not any("zz-config.py" in names for names in listed)
    sent = set()
    for path, idx in writes:
        if path.endswith(".idx"):
            shown = subprocess.run(
                ["git", "show-index"], input=idx, capture_output=True, check=True, timeout=60
            ).stdout.decode()
            sent |= {line.split()[1] for line in shown.splitlines()}
    assert sent
    assert blob not in sent
    assert [s for s in opened.sessions if s.is_alive()] == []
    assert list(localbox_registry.glob("*.json")) == []
    assert result.agent.num_turns == 0


def test_a_sandbox_failing_before_the_scan_blocks_still_gives_blocked(
    tmp_path, localbox_registry, localbox_host, claude_bin, monkeypatch
):
    """`secrets: fail`: the sandbox fails to start while the scan is still on its way to
    the secret; the run is blocked (nothing went up), not failed with the sandbox's error."""
    failed = threading.Event()
    events: list[tuple[object, ...]] = []
    hold_scan(monkeypatch, "zz-config.py", failed, events)

    def failing(_spec: SandboxSpec) -> SandboxSession:
        failed.set()
        raise SandboxStartError("the sandbox could not start", hint="try again")

    repo = make_repo(tmp_path / "repo")
    plan = repo / "PLAN.md"
    plan.write_text(plan.read_text().replace("title:", "secrets: fail\ntitle:"))
    (repo / "zz-config.py").write_text('TOKEN = "ghp_' + "A1b2C3d4E5" * 3 + 'abcdef"\n')
    commit_all(repo, "secret")
    result = run_pipeline(
        run_config(repo, tmp_path / "out", "http://127.0.0.1:9", claude_bin), failing
    )
    assert ("held-read", True) in events  # the scan reached the secret after the failure
    assert result.status == "blocked", result.message
    assert "secrets: fail" in result.message


def test_a_sandbox_failing_while_the_scan_finds_nothing_fails_the_run(
    tmp_path, localbox_registry, localbox_host, claude_bin
):
    """Without a secret, the sandbox's failure is the run's answer."""

    def failing(_spec: SandboxSpec) -> SandboxSession:
        raise SandboxStartError("the sandbox could not start", hint="try again")

    repo = make_repo(tmp_path / "repo")
    with pytest.raises(SandboxStartError):
        run_pipeline(run_config(repo, tmp_path / "out", "http://127.0.0.1:9", claude_bin), failing)
