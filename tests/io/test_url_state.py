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
    f = compute_url.FIELDS["params"]
    assert f.state_key == "compute_params"
    assert f.parse(f.write("70B")) == "70B"
    assert f.write("-5") is None  # an invalid entry stays out of the URL
    with pytest.raises(ValueError):
        compute_url.FIELDS["gpus"].parse("0")
    values, problems = compute_url.parse_query_params({"params": "70B", "gpus": "0", "nope": "1"})
    assert values == {"compute_params": "70B", "compute_n_gpus": 256, "compute_mode": "params"}  # memory's link
    assert len(problems) == 1 and "gpus=0" in problems[0] and "using the default (256)" in problems[0]
    assert compute_url.to_query_params({**compute_url.defaults(), "compute_params": "bad"}).get("params") is None


def test_every_planner_round_trips_its_defaults_through_the_one_codec():
    """Issue 31: the three planners' URL round trip is one codec (core.io.url_state.UrlCodec)."""
    from core.io import plan_io, serving_url
    from core.io.url_state import UrlCodec
    for url in (plan_io, compute_url, serving_url):
        assert isinstance(url.CODEC, UrlCodec)
        query = url.to_query_params(url.defaults())
        values, problems = url.parse_query_params(query)
        assert not problems and url.to_query_params({**url.defaults(), **values}) == query, url.__name__


def test_slug_names_downloads_safely():
    assert slug("HuggingFaceTB/SmolLM2-135M-Instruct") == "huggingfacetb-smollm2-135m-instruct"
    assert slug("") == "model" and slug(None, "run") == "run"
    assert len(slug("x" * 100)) == 40
