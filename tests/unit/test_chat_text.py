"""Text rules of the chat channels: truncation, splitting, escaping, fields."""

from __future__ import annotations

import itertools
import random

import pytest

from services.dispatcher.channels._text import (
    ELLIPSIS,
    Field,
    Measure,
    escape_html,
    escape_mrkdwn,
    notification_fields,
    split_spans,
    split_text,
    truncate,
    utf16_len,
)

WORDS = ["job", "Café", "naïve", "😀", "a&b", "<tag>", "x" * 40, "Zürich", "東京", "🇩🇪"]
MEASURES: list[Measure] = [len, utf16_len, lambda s: utf16_len(escape_mrkdwn(s))]


def random_text(rng: random.Random, words: int) -> str:
    out: list[str] = []
    for _ in range(words):
        out.append(rng.choice(WORDS))
        out.append(rng.choices([" ", "\n", "\n\n", "  "], weights=[20, 3, 2, 1])[0])
    return "".join(out)


def test_utf16_len_counts_characters_outside_the_bmp_twice() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("é") == 1
    assert utf16_len("😀") == 2
    assert utf16_len("🇩🇪") == 4


def test_text_that_fits_is_left_alone() -> None:
    assert truncate("short", 5) == "short"
    assert truncate("", 0) == ""


def test_truncation_ends_with_an_ellipsis_at_a_word_boundary() -> None:
    assert truncate("The quick brown fox jumps", 12) == "The quick…"


def test_a_huge_text_is_cut_without_reading_all_of_it() -> None:
    text = "word " * 2_000_000
    assert truncate(text, 12) == "word word…"
    assert split_text(text[:100_000], 12) == ["word word"] * 10_000


def test_a_single_long_word_is_cut_inside() -> None:
    assert truncate("x" * 50, 10) == "x" * 9 + ELLIPSIS


def test_a_limit_without_room_for_the_ellipsis_gives_nothing() -> None:
    assert truncate("hello", 0) == ""
    assert truncate("😀😀", 1, utf16_len) == ELLIPSIS  # no emoji fits beside it
    assert truncate("😀😀", 2, utf16_len) == ELLIPSIS


@pytest.mark.parametrize("measure", MEASURES)
def test_truncation_never_exceeds_the_limit_and_keeps_a_prefix(measure: Measure) -> None:
    rng = random.Random(7)
    for _ in range(150):
        text = random_text(rng, rng.randint(1, 60))
        limit = rng.randint(1, measure(text) + 5)
        cut = truncate(text, limit, measure)
        assert measure(cut) <= limit
        if measure(text) <= limit:
            assert cut == text
        elif cut:
            assert cut.endswith(ELLIPSIS)
            assert text.startswith(cut.removesuffix(ELLIPSIS))


def test_split_prefers_paragraphs() -> None:
    text = "First paragraph here.\n\nSecond one, a bit longer.\nWith a second line."
    assert split_text(text, 50) == [
        "First paragraph here.",
        "Second one, a bit longer.\nWith a second line.",
    ]


def test_split_falls_back_to_lines_then_words() -> None:
    assert split_text("one two\nthree four five", 16) == ["one two", "three four five"]
    assert split_text("one two three four five", 10) == ["one two", "three four", "five"]


def test_split_cuts_inside_a_word_only_when_it_is_longer_than_the_limit() -> None:
    assert split_text("ab " + "x" * 12 + " cd", 5) == ["ab", "xxxxx", "xxxxx", "xx cd"]


def test_text_that_fits_is_one_piece_and_blank_text_none() -> None:
    assert split_text("  hello world \n", 100) == ["hello world"]
    assert split_text(" \n\n ", 10) == []
    assert split_text("", 10) == []


def test_a_character_wider_than_the_limit_cannot_be_split() -> None:
    with pytest.raises(ValueError, match="more than the limit"):
        split_text("😀", 1, utf16_len)


@pytest.mark.parametrize("measure", MEASURES)
def test_split_pieces_fit_and_nothing_but_whitespace_is_lost(measure: Measure) -> None:
    rng = random.Random(11)
    for _ in range(150):
        text = random_text(rng, rng.randint(0, 200))
        limit = rng.randint(12, 400)
        spans = split_spans(text, limit, measure)
        pieces = [text[a:b] for a, b in spans]
        assert pieces == split_text(text, limit, measure)
        assert all(0 < measure(p) <= limit for p in pieces)
        assert all(p == p.strip() for p in pieces)
        # in order, not overlapping, only whitespace in between
        edges = [0, *[i for span in spans for i in span], len(text)]
        for gap_start, gap_end in zip(edges[::2], edges[1::2], strict=True):
            assert gap_start <= gap_end
            assert not text[gap_start:gap_end].strip()


def test_split_keeps_pieces_large() -> None:
    """Two neighbouring pieces never fit in one: the split is not needlessly fine."""
    rng = random.Random(3)
    for _ in range(100):
        text = " ".join(rng.choice(WORDS[:6]) for _ in range(300))
        pieces = split_text(text, 100)
        for left, right in itertools.pairwise(pieces):
            assert len(left) + 1 + len(right) > 100


def test_html_escaping_for_telegram() -> None:
    assert escape_html('a < b && c > "d"') == 'a &lt; b &amp;&amp; c &gt; "d"'
    assert escape_html('say "hi" & go', quote=True) == "say &quot;hi&quot; &amp; go"
    assert escape_html("&lt;") == "&amp;lt;"


def test_mrkdwn_escaping_for_slack() -> None:
    assert escape_mrkdwn("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escape_mrkdwn("*bold* _it_") == "*bold* _it_"


def test_fields_from_a_mapping_or_a_list() -> None:
    assert notification_fields({"fields": {"Company": "ACME", "Score": 93, "Note": None}}) == [
        Field("Company", "ACME"),
        Field("Score", "93"),
        Field("Note", ""),
    ]
    assert notification_fields(
        {
            "fields": [
                {"name": "Where", "value": "Berlin", "inline": True},
                {"title": "Salary", "value": "70k"},
                ["Remote", "yes"],
                {"name": "no value"},
                "stray",
            ]
        }
    ) == [Field("Where", "Berlin", True), Field("Salary", "70k"), Field("Remote", "yes")]


def test_no_fields_when_absent_or_malformed() -> None:
    assert notification_fields({}) == []
    assert notification_fields({"fields": "Company: ACME"}) == []
