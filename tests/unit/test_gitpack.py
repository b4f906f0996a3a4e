"""Which files travel as git objects, the packs and their index entries: real git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from claude_e2b.sync.gitpack import Pack, Split, split_selection, write_packs
from claude_e2b.sync.select import SelectOptions, select_files
from tests.gitrepo import commit_all, git, make_repo, repack


def split_of(root: Path, tmp: Path, **options: object) -> Split:
    return split_selection(select_files(root, SelectOptions(**options)), tmp)  # type: ignore[arg-type]


def entries(packs: list[Pack]) -> list[tuple[str, str, str]]:
    """Every pack's index entries as (mode, blob, path), in the order sent."""
    found = []
    for pack in packs:
        for record in pack.entries.split(b"\0")[:-1]:
            meta, _, path = record.partition(b"\t")
            mode, blob = meta.decode().split(" ")
            found.append((mode, blob, os.fsdecode(path)))
    return found


def tree_of(root: Path, split: Split, tmp: Path) -> str:
    """The tree the sandbox's index holds once it took every pack's entries."""
    objects = tmp / "tree-objects"
    objects.mkdir(parents=True)
    env = {
        **os.environ,
        "GIT_INDEX_FILE": str(tmp / "tree-index"),
        "GIT_OBJECT_DIRECTORY": str(objects),
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": split.object_env["GIT_ALTERNATE_OBJECT_DIRECTORIES"],
    }
    info = b"".join(pack.entries for pack in write_packs(split, tmp / "tree-packs"))
    for command, stdin in ((["update-index", "-z", "--index-info"], info), (["write-tree"], b"")):
        out = subprocess.run(
            ["git", "-C", str(root), *command], input=stdin, env=env,
            check=True, capture_output=True, timeout=60,
        ).stdout  # fmt: skip
    return out.decode().strip()


def tree_paths(split: Split, tmp: Path) -> set[str]:
    return {path for _mode, _blob, path in entries(list(write_packs(split, tmp / "listed")))}


def packed(split: Split) -> set[str]:
    return {p for paths in split.blobs.values() for p in paths}


def raw(split: Split) -> set[str]:
    return {f.path for f in split.raw}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(
        tmp_path / "repo",
        {
            "README.md": b"# demo\n",
            "src/app.py": b"print('hi')\n",
            "src/same.py": b"print('hi')\n",  # same blob as app.py
            "bin/run.sh": b"#!/bin/sh\n",
            "d\u00e9j\u00e0 vu/n o.txt": b"spaces\n",
        },
    )
    (root / "bin/run.sh").chmod(0o755)
    (root / "link").symlink_to("src/app.py")
    commit_all(root, "init")
    repack(root)
    return root


def test_clean_checkout_travels_whole_as_objects(repo: Path, tmp_path: Path) -> None:
    """A clean checkout: every file as an object; the entries sent make HEAD's tree."""
    split = split_of(repo, tmp_path / "w")
    assert raw(split) == set()
    assert packed(split) == {f.path for f in select_files(repo).files}
    assert tree_of(repo, split, tmp_path) == git(repo, "rev-parse", "HEAD^{tree}")
    assert sorted(split.blobs[git(repo, "rev-parse", "HEAD:src/app.py")]) == [
        "src/app.py",
        "src/same.py",
    ]


def test_changed_and_untracked_files_take_the_tar(repo: Path, tmp_path: Path) -> None:
    """Edited, re-moded, retyped and untracked files go in the tar; the rest as objects."""
    (repo / "README.md").write_bytes(b"# edited\n")
    (repo / "src/app.py").chmod(0o755)
    (repo / "link").unlink()
    (repo / "link").write_bytes(b"now a file\n")
    (repo / "new.txt").write_bytes(b"untracked\n")
    split = split_of(repo, tmp_path / "w", include_untracked=True)
    assert raw(split) == {"README.md", "src/app.py", "link", "new.txt"}
    assert tree_paths(split, tmp_path) == {"src/same.py", "bin/run.sh", "d\u00e9j\u00e0 vu/n o.txt"}


def test_excluded_tracked_file_is_in_no_pack(repo: Path, tmp_path: Path) -> None:
    """A tracked .env is in no pack's entries, and its blob in no pack."""
    (repo / ".env").write_bytes(b"TOKEN=secret\n")
    commit_all(repo, "env")
    env_blob = git(repo, "rev-parse", "HEAD:.env")
    split = split_of(repo, tmp_path / "w")
    assert ".env" not in tree_paths(split, tmp_path)
    assert env_blob not in split.blobs
    names = _packed_objects(repo, split, tmp_path / "out")
    assert env_blob not in names
    assert git(repo, "rev-parse", "HEAD") not in names  # no commit, no history


def _packed_objects(repo: Path, split: Split, out: Path) -> set[str]:
    names: set[str] = set()
    for pack in write_packs(split, out):
        listing = subprocess.run(
            ["git", "show-index"], input=pack.idx.read_bytes(), capture_output=True, check=True,
            timeout=60,
        ).stdout.decode()  # fmt: skip
        names |= {line.split()[1] for line in listing.splitlines()}
    return names


def with_data(repo: Path, tmp_path: Path) -> Split:
    """Six more committed files of random bytes, packed; the split of the checkout."""
    for i in range(6):
        (repo / f"data/{i}.bin").parent.mkdir(exist_ok=True)
        (repo / f"data/{i}.bin").write_bytes(os.urandom(3000))
    commit_all(repo, "data")
    repack(repo)
    return split_of(repo, tmp_path / "w")


def test_packs_hold_every_object_once_and_name_their_paths(repo: Path, tmp_path: Path) -> None:
    """Small groups give several packs; their entries cover the packed files exactly once."""
    split = with_data(repo, tmp_path)
    packs = list(write_packs(split, tmp_path / "out", group_bytes=4000))
    assert len(packs) >= 4
    sent = entries(packs)
    assert sorted(path for _m, _b, path in sent) == sorted(packed(split))
    head = {}
    for line in git(repo, "ls-tree", "-r", "-z", "HEAD").split("\0"):
        if line:
            meta, _, path = line.partition("\t")
            mode, _kind, blob = meta.split(" ")
            head[path] = (mode, blob)
    assert {path: (mode, blob) for mode, blob, path in sent} == head
    assert _packed_objects(repo, split, tmp_path / "out2") == set(split.blobs)  # no trees


def test_the_users_repository_gets_nothing_written(repo: Path, tmp_path: Path) -> None:
    """The split and the packs write nothing into the user's object store or index."""
    (repo / "README.md").write_bytes(b"# edited, so it takes the tar\n")
    before_objects = git(repo, "count-objects", "-v")
    before_index = (repo / ".git/index").read_bytes()
    split = split_of(repo, tmp_path / "w")
    assert list(write_packs(split, tmp_path / "out"))
    assert "README.md" in raw(split)
    assert git(repo, "count-objects", "-v") == before_objects
    assert (repo / ".git/index").read_bytes() == before_index


@pytest.mark.parametrize(
    ("attributes", "content", "as_object"),
    [
        ("*.txt eol=crlf\n", b"a\r\nb\r\n", False),  # worktree bytes differ from the blob
        ("*.txt text\n", b"single line, no newline", True),  # nothing to convert
        ("*.txt text=auto\n", b"a\nb\n", True),
        ("*.txt filter=lfs\n", b"a\nb\n", False),  # a filter may change anything
        ("*.txt working-tree-encoding=UTF-16\n", "a\nb\n".encode("utf-16"), False),
        ("*.txt -text\n", b"a\r\nb\r\n", True),
    ],
)
def test_attributes_that_convert_keep_files_in_the_tar(
    tmp_path: Path, attributes: str, content: bytes, *, as_object: bool
) -> None:
    """A file whose bytes on disk may not be its blob's goes in the tar."""
    root = make_repo(tmp_path / "attrs", {".gitattributes": attributes.encode()})
    commit_all(root, "attributes")
    (root / "f.txt").write_bytes(content)
    git(root, "-c", "core.safecrlf=false", "add", "f.txt")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "f")
    repack(root)
    (root / "f.txt").write_bytes(content)  # what a checkout with these attributes holds
    git(root, "update-index", "--refresh")
    split = split_of(root, tmp_path / "w")
    assert ("f.txt" in packed(split)) is as_object
    assert ".gitattributes" in packed(split)


def test_a_loose_blob_takes_the_tar(repo: Path, tmp_path: Path) -> None:
    """Committed but never packed: no compressed form to reuse, so the tar's zstd does it."""
    (repo / "fresh.txt").write_bytes(b"committed after the last repack\n")
    commit_all(repo, "fresh")
    split = split_of(repo, tmp_path / "w")
    assert raw(split) == {"fresh.txt"}
    assert "README.md" in packed(split)


def test_assume_unchanged_file_takes_the_tar(repo: Path, tmp_path: Path) -> None:
    """git would call an assume-unchanged file clean whatever it holds."""
    git(repo, "update-index", "--assume-unchanged", "README.md")
    (repo / "README.md").write_bytes(b"# changed behind git's back\n")
    assert "README.md" in raw(split_of(repo, tmp_path / "w"))


def test_autocrlf_sends_everything_in_the_tar(repo: Path, tmp_path: Path) -> None:
    """With core.autocrlf converting, no file's bytes can be trusted to be its blob's."""
    git(repo, "config", "core.autocrlf", "input")
    split = split_of(repo, tmp_path / "w")
    assert split.blobs == {}
    assert packed(split) == set()


def test_a_subdirectory_root_packs_its_own_tree(repo: Path, tmp_path: Path) -> None:
    """Run from src/, the entries make src/'s tree, with paths relative to it."""
    split = split_of(repo / "src", tmp_path / "w")
    assert packed(split) == {"app.py", "same.py"}
    assert tree_of(repo / "src", split, tmp_path) == git(repo, "rev-parse", "HEAD:src")


def test_chosen_groups_go_as_zpacks_and_hold_the_same_objects(repo: Path, tmp_path: Path) -> None:
    """The first group is git's (its weight is what packs cost); later ones zpacks."""
    split = with_data(repo, tmp_path)
    asked: list[list[str]] = []

    def zpacks(group: list[str]) -> str:
        asked.append(group)
        return "zpacks"

    packs = list(write_packs(split, tmp_path / "out", group_bytes=4000, choose=zpacks))
    assert [p.compressed for p in packs] == [False] + [True] * (len(packs) - 1)
    assert len(asked) == len(packs) - 1
    assert sorted(path for _m, _b, path in entries(packs)) == sorted(packed(split))
    names: set[str] = set()
    for pack in packs:
        path = pack.pack
        if pack.compressed:
            path = tmp_path / f"{pack.name}.pack"
            unzstd = ["zstd", "-dqf", str(pack.pack), "-o", str(path)]
            subprocess.run(unzstd, check=True, timeout=60)
            (tmp_path / f"{pack.name}.idx").write_bytes(pack.idx.read_bytes())
        idx = path.with_suffix(".idx")
        listing = git(repo, "verify-pack", "-v", str(idx))
        names |= {line.split()[0] for line in listing.splitlines() if " blob " in line}
    assert names == set(split.blobs)


def test_a_file_changed_after_the_split_makes_its_group_gits(repo: Path, tmp_path: Path) -> None:
    """A zpack is checked against the blob names: a changed file sends git's object."""
    (repo / "big.txt").write_bytes(b"x" * 5000)
    commit_all(repo, "big")
    repack(repo)
    split = split_of(repo, tmp_path / "w")
    (repo / "big.txt").write_bytes(b"y" * 5000)  # same size, other bytes
    packs = list(write_packs(split, tmp_path / "out", group_bytes=1, choose=lambda g: "zpacks"))
    holding = [p for p in packs if b"\tbig.txt\0" in p.entries]
    assert len(holding) == 1
    assert holding[0] is not packs[0]  # not the first group, which is always git's
    assert not holding[0].compressed
    assert any(p.compressed for p in packs)


def test_each_group_waits_for_the_scan_of_its_last_path(repo: Path, tmp_path: Path) -> None:
    """With ``cleared``, a group is made once the scan passed its last path, in order."""
    split = with_data(repo, tmp_path)
    order = [f.path for f in select_files(repo).files]
    asked: list[str] = []

    def cleared(path: str) -> frozenset[str]:
        asked.append(path)
        return frozenset()

    made = []
    for pack in write_packs(split, tmp_path / "out", group_bytes=4000, cleared=cleared):
        # The pack was made after its question, and holds no path past the one asked.
        assert len(asked) == len(made) + 1
        last = max(order.index(path) for _m, _b, path in entries([pack]))
        assert last == order.index(asked[-1])
        made.append(pack)
    assert [order.index(p) for p in asked] == sorted(order.index(p) for p in asked)
    assert sorted(path for _m, _b, path in entries(made)) == sorted(packed(split))


def test_paths_the_scan_excludes_leave_in_no_pack(repo: Path, tmp_path: Path) -> None:
    """An excluded path is in no entries; a blob all of whose paths are excluded, in no pack."""
    (repo / "secret.txt").write_bytes(b"only here\n")
    commit_all(repo, "secret")
    repack(repo)
    split = split_of(repo, tmp_path / "w")
    secret_blob = git(repo, "rev-parse", "HEAD:secret.txt")
    excluded = frozenset({"secret.txt", "src/app.py"})  # app.py's blob is also same.py's
    packs = list(write_packs(split, tmp_path / "out", cleared=lambda _path: excluded))
    paths = {path for _m, _b, path in entries(packs)}
    assert paths == packed(split) - excluded
    names = set()
    for pack in packs:
        listing = git(repo, "verify-pack", "-v", str(pack.idx))
        names |= {line.split()[0] for line in listing.splitlines() if " blob " in line}
    assert secret_blob not in names
    assert git(repo, "rev-parse", "HEAD:src/same.py") in names


def test_a_blob_goes_with_the_last_of_its_paths(repo: Path, tmp_path: Path) -> None:
    """Blobs are ordered by their last path: one held by an early and a late path waits."""
    split = split_of(repo, tmp_path / "w")
    order = [f.path for f in select_files(repo).files]
    last = [order.index(paths[-1]) for paths in split.blobs.values()]
    assert last == sorted(last)
    shared = split.blobs[git(repo, "rev-parse", "HEAD:src/app.py")]
    assert shared == ["src/app.py", "src/same.py"]


def test_a_scan_that_stops_the_upload_stops_the_packs(repo: Path, tmp_path: Path) -> None:
    """What ``cleared`` raises ends write_packs before the group is made."""
    split = with_data(repo, tmp_path)

    def blocked(_path: str) -> frozenset[str]:
        raise RuntimeError("the plan says secrets: fail")

    with pytest.raises(RuntimeError, match="secrets: fail"):
        list(write_packs(split, tmp_path / "out", group_bytes=4000, cleared=blocked))
    assert not list((tmp_path / "out").glob("*.pack"))
