"""The secret scan's verdict on what goes up: exclude the files, fail the run, or warn.

Hits are reported as ``path:line: rule``; the matched value never leaves the scanner.
``screen`` gives the verdict once the scan is over; ``ScreeningUnderway`` runs the
same scan in a thread and clears files one by one as it goes, so that the upload
can start before the scan ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Self

from claude_e2b.errors import SecretFoundError
from claude_e2b.sync.secrets import SecretHit, SecretScanner, scan_tree
from claude_e2b.sync.select import Excluded, Selection

SecretsPolicy = Literal["exclude", "fail", "warn"]


class ScreenBlockedError(SecretFoundError):
    """The plan says ``secrets: fail`` and the scan found a secret: nothing may go up."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"the secret scan found {found} secret(s) and the plan says `secrets: fail`;"
            " remove them from the repository (or use `secrets: exclude`)"
        )


@dataclass(frozen=True)
class Screening:
    """The selection to upload after the scan, and what the scan found."""

    selection: Selection
    hits: tuple[SecretHit, ...]
    blocked: bool

    def lines(self) -> list[str]:
        """One ``path:line: rule`` line per hit."""
        return [str(hit) for hit in self.hits]


def screen(selection: Selection, scanner: SecretScanner, policy: SecretsPolicy) -> Screening:
    """Scan every selected regular file and apply the plan's secrets policy.

    Nothing is stat-ed again: select's one ``lstat`` per file said which files are
    symlinks (they go up as links, their targets unscanned), and the scan opens the
    others without following a final symlink, on several threads.
    """
    hits = scan_tree(scanner, selection.root, _scanned_paths(selection))
    return _verdict(selection, tuple(hits), policy)


def _scanned_paths(selection: Selection) -> list[str]:
    """The selected files the scan reads: all but the symlinks."""
    return [f.path for f in selection.files if not f.is_symlink]


def _verdict(selection: Selection, hits: tuple[SecretHit, ...], policy: SecretsPolicy) -> Screening:
    """The policy applied to the scan's hits: what goes up, and whether the run is blocked."""
    held = _held_back(hits, policy)
    if held is None:
        return Screening(selection, hits, blocked=True)
    return Screening(_without(selection, hits) if held else selection, hits, blocked=False)


def _held_back(hits: tuple[SecretHit, ...], policy: SecretsPolicy) -> frozenset[str] | None:
    """The paths the policy keeps from going up, given these hits; None: it blocks the run."""
    if policy == "fail" and hits:
        return None
    if policy == "exclude":
        return frozenset(hit.path for hit in hits)
    return frozenset()


def _without(selection: Selection, hits: tuple[SecretHit, ...]) -> Selection:
    first: dict[str, SecretHit] = {}
    for hit in hits:
        first.setdefault(hit.path, hit)
    excluded = tuple(
        Excluded(path, f"secret found: {hit.rule} at line {hit.line}")
        for path, hit in first.items()
    )
    return replace(
        selection,
        files=tuple(f for f in selection.files if f.path not in first),
        excluded=selection.excluded + excluded,
    )


class ScreeningUnderway:
    """``screen`` run in a daemon thread, which an uploader waits on file by file.

    The scan starts at once.  ``cleared(path)`` returns as soon as the scan has
    passed that file and every file before it, not at the end, so files can go up
    while the rest is scanned; ``result()`` is what ``screen`` would have returned.
    The scan's progress calls wake the waiters; nothing polls.  Use it as a context
    manager, or call ``close``, to wait for the thread.
    """

    def __init__(self, selection: Selection, scanner: SecretScanner, policy: SecretsPolicy) -> None:
        self._selection, self._policy = selection, policy
        self._needs = _scanned_before(selection)
        self._changed = threading.Condition()
        self._scanned = 0  # how many of the scanned paths are done, from the start
        self._hits: tuple[SecretHit, ...] = ()  # the hits among them
        self._end: Screening | BaseException | None = None  # the verdict, or the scan's error
        self._at_end: list[Callable[[], None]] = []
        self._thread = threading.Thread(
            target=self._run, args=(scanner,), name="secret-screen", daemon=True
        )
        self._thread.start()

    def cleared(self, path: str) -> frozenset[str]:
        """Block until ``path`` and every selected file before it is scanned.

        Returns the paths, among all scanned so far, that must not go up: under
        ``exclude`` every path with a hit, under ``warn`` none.  Under ``fail``
        raises ScreenBlockedError once any hit is known, whatever the path.  Once
        the scan has failed, raises its error (a SyncError for an unreadable file)
        for every path: the run will not go on.  ValueError: not a selected path.
        """
        need = self._needs.get(path)
        if need is None:
            raise ValueError(f"{path!r} is not a selected file")
        with self._changed:
            self._changed.wait_for(lambda: self._scanned >= need or self._end is not None)
            if isinstance(self._end, BaseException):
                raise self._end
            held = _held_back(self._hits, self._policy)
            if held is None:
                raise ScreenBlockedError(len(self._hits))
            return held

    def result(self) -> Screening:
        """Block until the scan ends: what ``screen`` returns on the same input, or its error."""
        with self._changed:
            self._changed.wait_for(lambda: self._end is not None)
            end = self._end
        if isinstance(end, Screening):
            return end
        assert end is not None  # noqa: S101 - waited for above
        raise end

    def ended(self) -> bool:
        """Whether the scan has ended (with its verdict or its error)."""
        with self._changed:
            return self._end is not None

    def on_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the scan has ended (from its thread; now if it has)."""
        with self._changed:
            if self._end is None:
                self._at_end.append(callback)
                return
        callback()

    def close(self) -> None:
        """Wait for the scan's thread to end; never raises (its error is ``result``'s)."""
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _run(self, scanner: SecretScanner) -> None:
        paths = _scanned_paths(self._selection)
        end: Screening | BaseException
        try:
            hits = scan_tree(scanner, self._selection.root, paths, progress=self._seen)
            end = _verdict(self._selection, tuple(hits), self._policy)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            end = exc
        with self._changed:
            self._end = end
            self._changed.notify_all()
            at_end, self._at_end = self._at_end, []
        for callback in at_end:
            callback()

    def _seen(self, scanned: int, hits: list[SecretHit]) -> None:
        """The scan's progress: its first ``scanned`` paths are done, with these hits."""
        with self._changed:
            self._scanned, self._hits = scanned, tuple(hits)
            self._changed.notify_all()


def _scanned_before(selection: Selection) -> dict[str, int]:
    """For each selected path, how many scanned paths must be done before it clears.

    A regular file needs itself and every one before it; a symlink, which is not
    scanned, only those before it.
    """
    needs: dict[str, int] = {}
    scanned = 0
    for f in selection.files:
        scanned += not f.is_symlink
        needs[f.path] = scanned
    return needs


@dataclass(frozen=True)
class ContentCheck:
    """Callable form of the scanner for ApplyPolicy.secret_check."""

    scanner: SecretScanner

    def __call__(self, data: bytes, path: str) -> list[str]:
        """Rule names hit in ``data`` (never the values)."""
        return sorted({hit.rule for hit in self.scanner.scan_bytes(data, path)})
