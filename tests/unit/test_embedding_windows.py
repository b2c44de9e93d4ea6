"""How a long text is cut into overlapping windows of word pieces."""

from __future__ import annotations

import itertools

import pytest

from services.matcher.embedding import windows


def test_a_short_text_is_one_window() -> None:
    assert windows(0, 200, 40) == [(0, 0)]
    assert windows(200, 200, 40) == [(0, 200)]


def test_windows_overlap_and_cover_the_whole_text() -> None:
    spans = windows(500, 200, 40)
    assert spans == [(0, 200), (160, 360), (300, 500)]
    assert spans[0][0] == 0
    assert spans[-1][1] == 500
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start < end  # consecutive windows share pieces


def test_every_window_is_full_length_when_the_text_is_long() -> None:
    for pieces in (201, 333, 1000, 4097):
        spans = windows(pieces, 200, 40)
        assert all(end - start == 200 for start, end in spans)
        covered = set().union(*(range(s, e) for s, e in spans))
        assert covered == set(range(pieces))


@pytest.mark.parametrize(("window", "overlap"), [(200, 200), (200, -1), (10, 11)])
def test_overlap_must_be_smaller_than_the_window(window: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="overlap"):
        windows(1000, window, overlap)
