"""URL parsers shared by the planners: a link's text becomes a checked value or a clear message."""
import pytest

from core.io import compute_url
from core.io.url_state import UrlValueError, choice_parser, number_parser, parse_bool, slug


def test_choice_accepts_only_listed_options():
    parse = choice_parser(["fp32", "bf16"])
    assert parse("bf16") == "bf16"
    with pytest.raises(UrlValueError, match="expected one of: fp32, bf16"):
        parse("int3")


@pytest.mark.parametrize("text, message", [("abc", "a number"), ("nan", "between"), ("inf", "between"),
                                           ("-1", "between"), ("2.5", "whole number")])
def test_number_rejects_what_a_page_cannot_use(text, message):
    with pytest.raises(UrlValueError, match=message):
        number_parser(0, 10, integer=True)(text)


def test_number_and_bool_parse_valid_text():
    assert number_parser(0, 10, integer=True)("4") == 4
    assert number_parser(0.0, 1.0)("0.25") == 0.25
    assert parse_bool("true") is True and parse_bool("off") is False
    with pytest.raises(UrlValueError):
        parse_bool("maybe")


def test_compute_planner_url_fields_round_trip():
    state_key, default, parse, write = compute_url.FIELDS["params"]
    assert state_key == "compute_params"
    assert parse(write("70B")) == "70B"
    assert write("-5") is None  # an invalid entry stays out of the URL
    with pytest.raises(ValueError):
        compute_url.FIELDS["gpus"][2]("0")


def test_slug_names_downloads_safely():
    assert slug("HuggingFaceTB/SmolLM2-135M-Instruct") == "huggingfacetb-smollm2-135m-instruct"
    assert slug("") == "model" and slug(None, "run") == "run"
    assert len(slug("x" * 100)) == 40
