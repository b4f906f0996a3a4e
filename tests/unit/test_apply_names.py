"""Protected paths and .git are matched after one normalisation of names: no spelling slips by."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_e2b.sync.apply import ApplyPolicy, apply_changes
from claude_e2b.sync.apply_paths import fold_component, fold_path, is_dotgit, protected_match
from claude_e2b.sync.changes import Changeset
from tests.unit.test_apply import archive_of, change, reasons, regular

WORKFLOW_VARIANTS = [
    ".github/workflows/f.yml",
    ".github/workflows./f.yml",
    ".github/workflows. . /f.yml",
    ".GitHub/Workflows/f.yml",
    ".github/work\u200bflows/f.yml",
    ".github/\ufeffworkflows/f.yml",
    ".github/workflows\u00a0/f.yml",  # a no-break space is a space once folded
    ".github/\uff57orkflows/f.yml",  # fullwidth w
    ".github\u200d/workflows/f.yml",
    ".GITHUB/WORKFLOWS/F.YML",
    ".github/workflows/sub/deep.yaml",
]


@pytest.mark.parametrize("path", WORKFLOW_VARIANTS)
def test_workflow_variants_are_protected(tmp_path: Path, path: str) -> None:
    """Every spelling of .github/workflows/** is refused; the ordinary change is applied."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    archive = archive_of(tmp_path / "a.zst", [regular(path), regular("src/ok.py")])
    changes = Changeset((change(path), change("src/ok.py")))
    result = apply_changes(checkout, changes, archive, policy=ApplyPolicy())
    assert reasons(result) == {path: "protected path (matches '.github/workflows/**')"}
    assert [c.path for c in result.applied] == ["src/ok.py"]
    assert [p.name for p in checkout.iterdir()] == ["src"]


@pytest.mark.parametrize(
    "path",
    [".g\u200bit/config", ".git\u2060/hooks/pre-commit", "\uff0egit/config", "GIT~1/config"],
)
def test_dotgit_variants_are_refused(tmp_path: Path, path: str) -> None:
    """Zero-width, word-joiner, fullwidth and short-name spellings of .git are refused."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    archive = archive_of(tmp_path / "a.zst", [regular(path)])
    result = apply_changes(checkout, Changeset((change(path),)), archive, policy=ApplyPolicy())
    assert reasons(result) == {path: "path is inside .git"}


def test_deleting_a_protected_variant_is_refused(tmp_path: Path) -> None:
    """A deletion, or a rename away from, a folded protected path is refused too."""
    checkout = tmp_path / "checkout"
    (checkout / ".github" / "workflows").mkdir(parents=True)
    (checkout / ".github" / "workflows" / "ci.yml").write_bytes(b"on: push\n")
    archive = archive_of(tmp_path / "a.zst", [regular("ci.yml")])
    changes = Changeset(
        (
            change(".GitHub/workflows./ci.yml", "deleted"),
            change("ci.yml", "renamed", old_path=".github/Workflows/ci.yml"),
        )
    )
    why = reasons(apply_changes(checkout, changes, archive, policy=ApplyPolicy()))
    assert "protected" in why[".GitHub/workflows./ci.yml"]
    assert "protected" in why["ci.yml"]
    assert (checkout / ".github" / "workflows" / "ci.yml").exists()


def test_allowed_paths_match_the_name_as_written(tmp_path: Path) -> None:
    """A folded variant never widens allowed_paths: src./x.py is outside src/**."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    archive = archive_of(tmp_path / "a.zst", [regular("src./x.py"), regular("src/y.py")])
    changes = Changeset((change("src./x.py"), change("src/y.py")))
    result = apply_changes(
        checkout, changes, archive, policy=ApplyPolicy(allowed_paths=("src/**",))
    )
    assert reasons(result) == {"src./x.py": "outside allowed paths"}


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("Workflows", "workflows"),
        ("workflows. .", "workflows"),
        ("work\u200bflows", "workflows"),
        ("\ufb01le", "file"),  # the "fi" ligature
        ("Stra\u00dfe", "strasse"),
        ("\uff27\uff29\uff34", "git"),
        ("e\u0301", "\u00e9"),  # decomposed é, as macOS stores it
    ],
)
def test_fold_component(name: str, folded: str) -> None:
    """One folding: format characters out, NFKC, case folded, trailing dots and spaces off."""
    assert fold_component(name) == folded


def test_fold_path_and_protected_match() -> None:
    """Paths fold component by component; patterns are folded the same way."""
    assert fold_path(".GitHub./Workflows /f.YML") == ".github/workflows/f.yml"
    assert protected_match("Deploy./Prod.tf", ["deploy/**"]) == "deploy/**"
    assert protected_match("docs/x.md", ["deploy/**"]) is None
    assert is_dotgit("GIT~1")
    assert not is_dotgit(".github")
