"""The compute planner's inputs as they live in its URL: one ``Field`` each (URL key, session-state key, default,
parse, write), round-tripped by the codec every planner uses (``core.io.url_state.UrlCodec``).

Parsing turns a link's text into a checked value (invalid values fall back to the default on the page, with the
parser's message); writing turns a widget's value into URL text (None keeps an invalid entry out of the URL).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.plan import compute, compute_text
from core.plan.compute import ComputeInputError
from core.plan.hardware import DEFAULT_GPU, GPUS
from core.plan.parallel_tables import CUSTOM_PRESET, DEFAULT_LAYOUT_MODEL, layout_model_ids, preset_names
from core.io.url_state import Field, UrlCodec, choice_parser, number_parser, parse_bool

MODES = {"budget": "A compute budget", "params": "A model size", "data": "A data limit"}
UNITS = {"flops": "FLOPs", "pfsd": "PF/s-days", "cluster": "GPUs × days × MFU"}


def _g(v) -> str:
    return f"{v:g}"


def _count_field(url_key, state_key, default, low, high, what, unit, fmt, as_int) -> Field:
    """A free-text quantity field: parse checks the link's text is in [low, high] and shows it with `fmt`; write puts
    a valid entry in the URL (a whole number when `as_int`) and keeps an invalid one out (None)."""
    def parse(text):
        return fmt(compute_text.parse_in_range(text, low, high, what, unit))

    def write(value):
        try:
            v = compute_text.parse_in_range(value, low, high, what, unit)
        except ComputeInputError:
            return None  # invalid text stays on the page, not in the URL
        return str(int(round(v))) if as_int else f"{v:.6g}"
    return Field(url_key, state_key, default, parse, write)


FIELDS: dict[str, Field] = {f.url_key: f for f in [
    Field("mode", "compute_mode", "budget", choice_parser(list(MODES))),
    Field("unit", "compute_budget_unit", "cluster", choice_parser(list(UNITS))),
    _count_field("flops", "compute_budget_flops", "5.76e23", compute_text.MIN_FLOPS, compute_text.MAX_FLOPS,
                 "Compute budget", "FLOPs", lambda v: f"{v:.4g}", as_int=False),
    _count_field("pfsd", "compute_budget_pfsd", "3640", compute_text.MIN_PFLOP_S_DAYS, compute_text.MAX_PFLOP_S_DAYS,
                 "Compute budget", "PF/s-days", lambda v: f"{v:.6g}", as_int=False),
    Field("days", "compute_budget_days", 30.0, number_parser(0.01, 3650.0), _g),
    _count_field("params", "compute_params", "7B", compute_text.MIN_PARAMS, compute_text.MAX_PARAMS, "Model size",
                 "parameters", compute_text.format_input_count, as_int=True),
    _count_field("tokens", "compute_tokens", "700B", compute_text.MIN_TOKENS, compute_text.MAX_TOKENS, "Data limit",
                 "tokens", compute_text.format_input_count, as_int=True),
    Field("gpu", "compute_gpu", DEFAULT_GPU, choice_parser(list(GPUS))),
    Field("gpus", "compute_n_gpus", 256, number_parser(1, 1_000_000, integer=True)),
    Field("mfu", "compute_mfu_percent", compute.DEFAULT_MFU * 100, number_parser(1.0, 100.0), _g),
    Field("price", "compute_price", 2.0, number_parser(0.0, 1000.0), _g),
    Field("k", "compute_flops_per_param_token", compute.FLOPS_PER_PARAM_TOKEN, number_parser(1.0, 100.0), _g),
    Field("recompute", "compute_recompute", False, parse_bool, lambda v: "true" if v else "false"),
    Field("ratio", "compute_tokens_per_param", compute.CHINCHILLA_TOKENS_PER_PARAM, number_parser(1.0, 10_000.0), _g),
    # the Training layout tab (core.plan.parallel)
    Field("lpreset", "layout_preset", CUSTOM_PRESET, choice_parser([CUSTOM_PRESET, *preset_names()])),
    Field("lmodel", "layout_model", DEFAULT_LAYOUT_MODEL, choice_parser(layout_model_ids())),
    Field("lgpu", "layout_gpu", "H100 SXM", choice_parser(list(GPUS))),
    Field("lgpus", "layout_gpus", 64, number_parser(1, 65_536, integer=True)),
    Field("lnode", "layout_per_node", 8, number_parser(1, 16, integer=True)),
    Field("lseq", "layout_seq", 4096, number_parser(1, 1_048_576, integer=True)),
    Field("lbatch", "layout_batch", 512, number_parser(1, 1_000_000, integer=True)),
    Field("ltokens", "layout_tokens", 2000.0, number_parser(0.001, 1e6), _g),
]}
CODEC = UrlCodec(FIELDS.values())


def defaults() -> dict[str, Any]:
    """Session-state key → default value."""
    return CODEC.defaults()


def parse_query_params(query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """URL query → (session values for the keys present, problems); invalid values fall back to the default. A link
    from the memory planner (``params`` without ``mode``) plans from that model size."""
    values, problems = CODEC.parse(query)
    if "params" in query and "mode" not in query:
        values["compute_mode"] = "params"
    return values, problems


def to_query_params(values: Mapping[str, Any]) -> dict[str, str]:
    """Session values → URL query params (an invalid entry stays on the page, out of the URL)."""
    return CODEC.write(values)
