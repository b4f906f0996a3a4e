"""Choosing packs or zpacks from the link's measured rate and a sample of the content."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from claude_e2b.sync import linkfit
from claude_e2b.sync.gitpack import split_selection
from claude_e2b.sync.linkfit import Chooser, Estimate, Meter
from claude_e2b.sync.select import select_files
from tests.gitrepo import commit_all, make_repo, repack

MB = 1e6


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_skips_the_first_bytes_then_times_the_next() -> None:
    """What the socket's buffers swallow at once does not count."""
    clock = Clock()
    meter = Meter(clock)
    meter.add(linkfit.WARMUP_BYTES)  # instantly: buffers
    assert meter.rate is None
    clock.now = 2.0
    meter.add(linkfit.MEASURE_BYTES)
    assert meter.rate == pytest.approx(linkfit.MEASURE_BYTES / 2.0)


def test_a_whole_first_piece_stands_in_for_the_rate() -> None:
    meter = Meter(Clock())
    meter.piece_sent(2_000_000, 0.5)
    assert meter.wait(0.0) == pytest.approx(4_000_000)


def test_a_tiny_piece_tells_nothing_and_the_chooser_asks_again(
    text_repo: Path, tmp_path: Path
) -> None:
    """A request of a few bytes is timed by its round trips, not by the link."""
    meter = Meter(Clock())
    meter.piece_sent(1000, 0.5)
    assert meter.wait(0.0) is None
    chooser, group = chooser_for(text_repo, tmp_path / "w", "auto", meter)
    assert chooser(group) == "packs"
    assert chooser.decided is None
    meter.piece_sent(2_000_000, 2.0)  # 8 Mbit/s
    assert chooser(group) == "zpacks"


def test_waiting_for_the_rate_ends_when_it_is_measured() -> None:
    clock = Clock()
    meter = Meter(clock)
    heard: list[float | None] = []
    waiter = threading.Thread(target=lambda: heard.append(meter.wait(30)))
    waiter.start()
    meter.add(linkfit.WARMUP_BYTES)
    clock.now = 1.0
    meter.add(linkfit.MEASURE_BYTES)
    waiter.join(10)
    assert heard == [pytest.approx(linkfit.MEASURE_BYTES)]


@pytest.mark.parametrize(
    ("link_mbit", "expected"),
    [(10_000, "packs"), (1_000, "packs"), (100, "zpacks"), (20, "zpacks")],
)
def test_text_goes_as_zpacks_only_where_the_link_is_slow(link_mbit: int, expected: str) -> None:
    """Text: git's zlib 0.33 of the content, zstd 0.25, zpacks made at 200 MB/s."""
    estimate = Estimate(link_mbit * MB / 8, 0.33, 0.25, 200 * MB)
    assert estimate.choice() == expected


def test_incompressible_content_stays_in_packs_even_on_a_slow_link() -> None:
    """Random bytes: zstd saves nothing over zlib, so the CPU would be spent for nothing."""
    assert Estimate(10 * MB / 8, 1.0, 1.0, 200 * MB).choice() == "packs"


def chooser_for(root: Path, tmp: Path, transfer: str, meter: Meter) -> tuple[Chooser, list[str]]:
    split = split_selection(select_files(root), tmp)
    chooser = Chooser(transfer, split.root, split.object_env, split.blobs, split.sizes, meter)  # type: ignore[arg-type]
    return chooser, list(split.blobs)


@pytest.fixture
def text_repo(tmp_path: Path) -> Path:
    # Blocks that repeat further apart than zlib's 32 KiB window: zstd's sees them.
    rng = random.Random(3)
    block = rng.randbytes(48 * 1024).hex().encode()
    files = {f"src/m{i}.txt": block * 12 + str(i).encode() for i in range(4)}
    root = make_repo(tmp_path / "repo", files)
    commit_all(root, "init")
    repack(root)
    return root


def test_auto_measures_a_sample_and_picks_zpacks_on_a_slow_link(
    text_repo: Path, tmp_path: Path
) -> None:
    meter = Meter(Clock())
    meter.piece_sent(2_000_000, 2.0)  # 8 Mbit/s
    chooser, group = chooser_for(text_repo, tmp_path / "w", "auto", meter)
    assert chooser(group) == "zpacks"
    assert chooser.estimate is not None
    assert chooser.estimate.zpack_ratio < chooser.estimate.packed_ratio
    assert chooser(group) == "zpacks"  # decided once


def test_auto_keeps_packs_on_a_fast_link(text_repo: Path, tmp_path: Path) -> None:
    meter = Meter(Clock())
    meter.piece_sent(10**10, 1.0)  # 80 Gbit/s: the CPU is the time
    chooser, group = chooser_for(text_repo, tmp_path / "w", "auto", meter)
    assert chooser(group) == "packs"


def test_auto_keeps_packs_when_nothing_was_measured(
    text_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(linkfit, "WAIT_S", 0.01)
    chooser, group = chooser_for(text_repo, tmp_path / "w", "auto", Meter(Clock()))
    assert chooser(group) == "packs"
    assert chooser.estimate is None


@pytest.mark.parametrize("transfer", ["packs", "zpacks"])
def test_a_fixed_transfer_never_waits(text_repo: Path, tmp_path: Path, transfer: str) -> None:
    chooser, group = chooser_for(text_repo, tmp_path / "w", transfer, Meter(Clock()))
    assert chooser(group) == transfer


def test_the_metered_file_counts_what_is_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(100_000))
    meter = Meter(Clock())
    with meter.open(path) as handle:
        assert len(handle.read(65_536)) + len(handle.read()) == 100_000
    assert meter._total == 100_000


def test_the_first_packs_weight_sets_what_packs_cost(text_repo: Path, tmp_path: Path) -> None:
    """Packs observed at 90 % of their content make zpacks (zstd: a few %) the clear choice."""
    meter = Meter(Clock())
    meter.piece_sent(2_000_000, 0.2)  # 80 Mbit/s
    chooser, group = chooser_for(text_repo, tmp_path / "w", "auto", meter)
    chooser.observe(900, 1000)
    chooser.observe(1, 1000)  # only the first counts
    assert chooser(group) == "zpacks"
    assert chooser.estimate is not None
    assert chooser.estimate.packed_ratio == pytest.approx(0.9)
