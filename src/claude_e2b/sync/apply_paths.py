"""The path rules of the apply step: which names may be written, and when two names are one file.

One normalisation, :func:`fold_component`, says when two names are the same file
on some file system a checkout may live on: Windows drops trailing dots and
spaces and knows ``.git`` as ``git~1``; HFS+ ignores zero-width and other format
characters (Unicode category Cf); case-insensitive file systems fold case, after
Unicode compatibility forms (NFKC: fullwidth letters, ligatures) are folded too.
The ``.git`` check and the protected-path globs both match folded names, so
``.github/workflows./f.yml``, ``.GitHub/Workflows/f.yml`` and a ``workflows``
with a zero-width space in it all count as ``.github/workflows/f.yml``.

Path patterns (``allowed_paths``, ``protected_paths``) are globs matched with
wcmatch: ``**`` spans directories, ``*`` stays within one, dot files match, and a
pattern that matches a directory covers everything under it (as in .gitignore).
Protected patterns match the folded path (the pattern folded the same way);
allowed patterns match the path as written, so a variant never widens them.
"""

from __future__ import annotations

import posixpath
import unicodedata
from typing import TYPE_CHECKING

from wcmatch import glob

if TYPE_CHECKING:
    from collections.abc import Iterable

_GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.FORCEUNIX
_DOTGIT_NAMES = (".git", "git~1")
_FORMAT = "Cf"  # zero-width spaces and joiners, bidi controls, BOM, soft hyphen...
# Longer or deeper paths break the runner's tools: PATH_MAX for whatever opens a file
# by name, and Python's recursion limit for tree walks (shutil.rmtree on 3.11).
_MAX_PATH_BYTES = 4095
_MAX_DEPTH = 255


def _drop_format(text: str) -> str:
    if text.isascii():
        return text  # the common case, without a look-up per character
    return "".join(c for c in text if unicodedata.category(c) != _FORMAT)


def fold_component(name: str) -> str:
    """Fold one path component to the key under which file systems may confuse it."""
    text = unicodedata.normalize("NFKC", _drop_format(name))
    # Case folding can leave text that is not in NFKC ("ǰ"), so normalise once more.
    text = unicodedata.normalize("NFKC", text.casefold())
    return _drop_format(text).rstrip(". ")


def fold_path(path: str) -> str:
    """Fold every component of a ``/``-separated path (see :func:`fold_component`)."""
    return "/".join(fold_component(part) for part in path.split("/"))


def is_dotgit(name: str) -> bool:
    """Whether a path component is ``.git`` on some file system."""
    return fold_component(name) in _DOTGIT_NAMES


def ancestors(path: str) -> list[str]:
    """Return the directories above ``path``, outermost first: "a/b/c" gives a, a/b."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def path_problem(path: str) -> str | None:
    """Say why ``path`` may never be written in a checkout, or None when it may."""
    if not path or "\0" in path:
        return "empty path or NUL in path"
    if path.startswith("/"):
        return "absolute path"
    if "\\" in path:
        return "backslash in path (a separator on Windows)"
    if (
        len(path.encode("utf-8", "surrogatepass")) > _MAX_PATH_BYTES
        or path.count("/") >= _MAX_DEPTH
    ):
        return f"path is over {_MAX_PATH_BYTES} bytes or {_MAX_DEPTH} directories deep"
    return _segment_problem(path.split("/"))


def _segment_problem(parts: list[str]) -> str | None:
    if any(part in ("", ".") for part in parts):
        return "path is not normalized (empty or '.' segment)"
    if ".." in parts:
        return "path has a '..' segment"
    if any(is_dotgit(part) for part in parts):
        return "path is inside .git"
    if any(not fold_component(part) for part in parts):
        # Windows reads "...", ". ." and the like as "." or "..".
        return "a path component is only dots, spaces or invisible characters"
    return None


def name_problem(path: str) -> str | None:
    """Say why a name a reviewer could misread may not be created, or None.

    For new names only: a file the repository already has keeps its name.
    """
    for part in path.split("/"):
        hidden = next((c for c in part if unicodedata.category(c) == _FORMAT), None)
        if hidden is not None:
            name = unicodedata.name(hidden, "format character")
            return f"a name holds an invisible character (U+{ord(hidden):04X} {name})"
        if part.endswith((".", " ")):
            return "a name ends with a dot or a space (Windows drops it: another file there)"
    return None


def _first_match(path: str, patterns: Iterable[str], flags: int) -> str | None:
    candidates = [*ancestors(path), path]
    for pattern in patterns:
        if any(glob.globmatch(c, pattern, flags=flags) for c in candidates):
            return pattern
    return None


def protected_match(path: str, patterns: Iterable[str]) -> str | None:
    """Return the first protected pattern ``path`` falls under once folded, or None."""
    folded = fold_path(path)
    for pattern in patterns:
        if _first_match(folded, [fold_path(pattern)], _GLOB_FLAGS | glob.IGNORECASE):
            return pattern
    return None


def policy_problem(path: str, protected: Iterable[str], allowed: tuple[str, ...]) -> str | None:
    """Say why the plan's protected or allowed paths refuse ``path``, or None."""
    match = protected_match(path, protected)
    if match is not None:
        return f"protected path (matches {match!r})"
    if allowed and _first_match(path, allowed, _GLOB_FLAGS) is None:
        return "outside allowed paths"
    return None


def link_problem(path: str, target: str) -> str | None:
    """Say why a symlink at ``path`` may not point at ``target``, or None."""
    if not target or "\0" in target:
        return "symlink with an empty target"
    if target.startswith("/"):
        return f"symlink to an absolute path ({target!r})"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        return f"symlink target {target!r} points outside the checkout"
    if any(is_dotgit(part) for part in resolved.split("/")):
        return f"symlink target {target!r} points into .git"
    return None
