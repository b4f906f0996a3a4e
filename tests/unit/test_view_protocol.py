"""The RunView protocol: NullView answers all of it; counted() feeds a transfer."""

from __future__ import annotations

import inspect

from claude_e2b.view import NullView, RunView, counted
from tests.unit.test_view_tables import make_result


class Tally:
    def __init__(self) -> None:
        self.moved: list[int] = []

    def advance(self, nbytes: int) -> None:
        self.moved.append(nbytes)

    def set_total(self, total: int) -> None:  # pragma: no cover - not used here
        raise AssertionError(total)


def test_null_view_has_every_method_and_shows_nothing(capsys):
    """Each method of the protocol exists on NullView, with the same parameters."""
    names = [n for n, v in vars(RunView).items() if inspect.isfunction(v) and n[0] != "_"]
    assert set(names) == {
        "step", "transfer", "agent_line", "agent_status", "warning", "info", "finished",
    }  # fmt: skip
    for name in names:
        ours = inspect.signature(getattr(RunView, name)).parameters
        assert list(inspect.signature(getattr(NullView, name)).parameters) == list(ours)
    view = NullView()
    with view.step("x"), view.transfer("y", 3) as moved:
        moved.advance(3)
        moved.set_total(4)
    view.finished(make_result())
    assert capsys.readouterr() == ("", "")


def test_counted_passes_chunks_through_and_counts_them():
    tally = Tally()
    assert b"".join(counted(iter([b"ab", b"", b"cde"]), tally)) == b"abcde"
    assert tally.moved == [2, 0, 3]
