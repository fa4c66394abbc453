"""The compute planner's inputs as they live in its URL: URL key → (session-state key, default, parse, write).

Parsing turns a link's text into a checked value (invalid values fall back to the default on the page, with the
parser's message); writing turns a widget's value into URL text (None keeps an invalid entry out of the URL).
"""
from __future__ import annotations

from core.plan import compute, compute_text
from core.plan.compute import ComputeInputError
from core.plan.hardware import DEFAULT_GPU, GPUS
from core.plan.parallel_tables import CUSTOM_PRESET, DEFAULT_LAYOUT_MODEL, layout_model_ids, preset_names
from core.io.url_state import choice_parser, number_parser, parse_bool

MODES = {"budget": "A compute budget", "params": "A model size", "data": "A data limit"}
UNITS = {"flops": "FLOPs", "pfsd": "PF/s-days", "cluster": "GPUs × days × MFU"}


def _count_field(state_key, default, low, high, what, unit, fmt, as_int):
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
    return state_key, default, parse, write


FIELDS = {
    "mode": ("compute_mode", "budget", choice_parser(list(MODES)), str),
    "unit": ("compute_budget_unit", "cluster", choice_parser(list(UNITS)), str),
    "flops": _count_field("compute_budget_flops", "5.76e23", compute_text.MIN_FLOPS, compute_text.MAX_FLOPS, "Compute budget",
                          "FLOPs", lambda v: f"{v:.4g}", as_int=False),
    "pfsd": _count_field("compute_budget_pfsd", "3640", compute_text.MIN_PFLOP_S_DAYS, compute_text.MAX_PFLOP_S_DAYS,
                         "Compute budget", "PF/s-days", lambda v: f"{v:.6g}", as_int=False),
    "days": ("compute_budget_days", 30.0, number_parser(0.01, 3650.0), lambda v: f"{v:g}"),
    "params": _count_field("compute_params", "7B", compute_text.MIN_PARAMS, compute_text.MAX_PARAMS, "Model size", "parameters",
                           compute_text.format_input_count, as_int=True),
    "tokens": _count_field("compute_tokens", "700B", compute_text.MIN_TOKENS, compute_text.MAX_TOKENS, "Data limit", "tokens",
                           compute_text.format_input_count, as_int=True),
    "gpu": ("compute_gpu", DEFAULT_GPU, choice_parser(list(GPUS)), str),
    "gpus": ("compute_n_gpus", 256, number_parser(1, 1_000_000, integer=True), str),
    "mfu": ("compute_mfu_percent", compute.DEFAULT_MFU * 100, number_parser(1.0, 100.0), lambda v: f"{v:g}"),
    "price": ("compute_price", 2.0, number_parser(0.0, 1000.0), lambda v: f"{v:g}"),
    "k": ("compute_flops_per_param_token", compute.FLOPS_PER_PARAM_TOKEN, number_parser(1.0, 100.0), lambda v: f"{v:g}"),
    "recompute": ("compute_recompute", False, parse_bool, lambda v: "true" if v else "false"),
    "ratio": ("compute_tokens_per_param", compute.CHINCHILLA_TOKENS_PER_PARAM, number_parser(1.0, 10_000.0),
              lambda v: f"{v:g}"),
    # the Training layout tab (core.plan.parallel)
    "lpreset": ("layout_preset", CUSTOM_PRESET, choice_parser([CUSTOM_PRESET, *preset_names()]), str),
    "lmodel": ("layout_model", DEFAULT_LAYOUT_MODEL, choice_parser(layout_model_ids()), str),
    "lgpu": ("layout_gpu", "H100 SXM", choice_parser(list(GPUS)), str),
    "lgpus": ("layout_gpus", 64, number_parser(1, 65_536, integer=True), str),
    "lnode": ("layout_per_node", 8, number_parser(1, 16, integer=True), str),
    "lseq": ("layout_seq", 4096, number_parser(1, 1_048_576, integer=True), str),
    "lbatch": ("layout_batch", 512, number_parser(1, 1_000_000, integer=True), str),
    "ltokens": ("layout_tokens", 2000.0, number_parser(0.001, 1e6), lambda v: f"{v:g}"),
}
