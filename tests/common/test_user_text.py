"""core.common.user_text's small tools for text shown to the user: clip (a prefix of a long text) and counted (a count
agreed in number)."""
import pytest

from core.common.user_text import clip, counted


def test_clip_keeps_the_first_characters_and_marks_the_cut():
    assert clip("x" * 10_000, 40) == "x" * 40 + "…"
    assert clip("x" * 10_000, 2000, ellipsis="") == "x" * 2000
    assert clip("short", 40) == "short" and clip("exactly", 7) == "exactly"  # a text that fits is not marked
    assert clip("", 0) == "" and clip("a", 0) == "…"
    assert clip(12345, 3) == "123…"  # anything is quoted as its text
    with pytest.raises(ValueError, match="0 or more"):
        clip("a", -1)


def test_counted_agrees_the_noun_with_the_number():
    assert counted(1, "item") == "1 item"
    assert counted(0, "item") == "0 items" and counted(8, "item") == "8 items"
    assert counted(12_000, "completion") == "12,000 completions"
    assert counted(2, "analysis", "analyses") == "2 analyses"
