"""The split of a selection made ahead, in a thread, while the scan runs and the sandbox starts.

Which files go as git objects (see gitpack.split_selection) asks git about the
checkout's metadata only: no file content leaves, nothing is sent. A run starts it
as soon as the files are selected; the upload takes it for the same files (the
scan's exclusions are then applied pack by pack, see gitpack.write_packs), else it
splits again. The temporary directory (the packs and chunks) belongs to it until it
is closed.
"""

from __future__ import annotations

import contextlib
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

from claude_e2b.sync.gitpack import Split, split_selection
from claude_e2b.sync.select import Selection


class PreparedSplit:
    """A selection's split, being made in a thread, and the directory the upload spools in."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self._spool = tempfile.TemporaryDirectory(prefix="claude-e2b-upload-")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claude-e2b-split")
        self._future: Future[Split] = executor.submit(
            split_selection, selection, self.spool_dir / "git"
        )
        executor.shutdown(wait=False)

    @property
    def spool_dir(self) -> Path:
        """Where the upload makes its packs and chunks."""
        return Path(self._spool.name)

    def serves(self, selection: Selection) -> bool:
        """Whether it was made for exactly these files."""
        return selection.root == self.selection.root and selection.files == self.selection.files

    def split(self) -> Split:
        """Wait for the split; raises what making it raised."""
        return self._future.result()

    def close(self) -> None:
        """Wait for the thread, then remove the directory; never raises."""
        with contextlib.suppress(BaseException):
            self._future.result()
        self._spool.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        _kind: type[BaseException] | None,
        _error: BaseException | None,
        _trace: TracebackType | None,
    ) -> None:
        self.close()
