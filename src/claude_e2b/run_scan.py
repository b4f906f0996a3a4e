"""The run's secret scan, beside the sandbox's start and the upload, and its verdict.

The scan starts once the files are selected (``ScreeningUnderway``, in a thread of
its own). The run waits for it only until the sandbox is ready: when the scan ends
first, a blocked run never uploads; when the sandbox is ready first, the upload
begins and each pack waits until the scan has passed its files (nothing leaves
before it is scanned). The verdict (``Screened``: what may go up, the warnings, why
the run is blocked) is drawn once, when the scan has ended.
"""

from __future__ import annotations

import threading
import time

from claude_e2b.config import RunConfig
from claude_e2b.log import get_logger
from claude_e2b.opening import OpeningSandbox
from claude_e2b.outcome import Screened
from claude_e2b.sync.screen import ScreenBlockedError, Screening, ScreeningUnderway
from claude_e2b.sync.secrets import SecretScanner
from claude_e2b.sync.select import Selection
from claude_e2b.view import RunView

log = get_logger(__name__)

# How often the waiting main thread wakes, so that a signal's handler runs at once.
_WAKE_S = 0.05


class RunScan:
    """The scan of one run's selection, and its verdict once it has ended."""

    def __init__(
        self, config: RunConfig, selection: Selection, scanner: SecretScanner, view: RunView
    ) -> None:
        self.config, self.selection, self.view = config, selection, view
        self._started = time.monotonic()
        self.underway = ScreeningUnderway(selection, scanner, config.secrets_policy)
        self._wake = threading.Event()  # the scan ended, or the sandbox is ready
        self.underway.on_end(self._on_end)
        self._screened: Screened | None = None

    def _on_end(self) -> None:
        log.info("secrets.scan_ended", seconds=round(time.monotonic() - self._started, 3))
        self._wake.set()

    def until_ended_or_ready(self, opening: OpeningSandbox) -> bool:
        """Wait until the scan has ended or the sandbox is ready; whether the scan has."""
        opening.on_ready(self._wake.set)  # wakes this wait, which then asks the scan
        while not self._wake.wait(_WAKE_S):
            pass
        ended = self.underway.ended()
        if not ended:
            log.info("secrets.scan_continues", during="upload")
        return ended

    def screened(self) -> Screened:
        """The verdict: waits for the scan's end; the first call logs and shows it."""
        if self._screened is None:
            self._screened = verdict(self.config, self.underway.result())
            for warning in self._screened.warnings:
                self.view.warning(warning)
        return self._screened

    def blocks(self) -> bool:
        """Whether the scan, once ended, blocks the run (False when it failed)."""
        screened = self._screened_or_none()
        return screened is not None and bool(screened.blocked)

    def screened_if_ended(self) -> Screened | None:
        """The verdict when the scan has ended (without an error), else None."""
        return self._screened_or_none() if self.underway.ended() else None

    def close(self) -> None:
        """Wait for the scan's thread; never raises."""
        self.underway.close()

    def _screened_or_none(self) -> Screened | None:
        """The verdict (waits for the scan's end); None when the scan failed."""
        try:
            return self.screened()
        except Exception:  # noqa: BLE001 - its error is reported where it is met
            return None


def verdict(config: RunConfig, screening: Screening) -> Screened:
    """The plan's secrets policy applied: what goes up, the warnings, why it is blocked."""
    for hit in screening.lines():
        log.warning("secrets.found", hit=hit, policy=config.secrets_policy)
    for excluded in screening.selection.excluded:
        log.info("select.excluded", path=excluded.path, reason=excluded.reason)
    blocked = str(ScreenBlockedError(len(screening.hits))) if screening.blocked else ""
    warnings = tuple(f"secret found before upload: {hit}" for hit in screening.lines())
    return Screened(screening.selection, warnings, blocked)
