"""Decoding settings and next-token distribution shaping with transformers' own logits processors.

The processors are the classes ``GenerationMixin.generate()`` instantiates, applied in the same order
(``GenerationMixin._get_logits_processor`` in transformers 5.x): repetition penalty and no-repeat n-gram first, then —
only when sampling — temperature, top-k, top-p, min-p, typical, ε-cutoff, η-cutoff. So a distribution shown here is
exactly the one ``generate()`` samples from. ``temperature_last`` moves temperature after the truncation samplers (as
llama.cpp and text-generation-webui allow); transformers' generate() has no such switch, so those settings pass the
same warper classes, in that order, through generate()'s ``logits_processor`` argument.

Sources: temperature and top-k sampling — Fan, Lewis & Dauphin 2018 ("Hierarchical Neural Story Generation", §5.4);
nucleus (top-p) sampling — Holtzman et al. 2020 ("The Curious Case of Neural Text Degeneration", Eq. 3);
repetition penalty — Keskar et al. 2019 (CTRL, §4.1, Eq. 2); min-p — Nguyen et al. 2024 ("Turning Up the Heat:
Min-p Sampling", arXiv:2407.01082, §3); typical sampling — Meister et al. 2023 ("Locally Typical Sampling", TACL, §4);
ε- and η-sampling — Hewitt, Manning & Liang 2022 ("Truncation Sampling as Language Model Desmoothing", §4);
no-repeat n-gram blocking — Paulus, Xiong & Socher 2018 ("A Deep Reinforced Model for Abstractive Summarization", §2.5).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch
from transformers import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    LogitsProcessor,
    LogitsProcessorList,
    MinPLogitsWarper,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

DECODING_MODES = ("greedy", "sampling", "beam search")


def generation_config_defaults() -> dict:
    """transformers' GenerationConfig defaults (the values generate() falls back to when nothing is set)."""
    from transformers import GenerationConfig

    getter = getattr(GenerationConfig, "_get_default_generation_params", None)
    defaults = dict(getter()) if getter else {}
    fallback = {"do_sample": False, "num_beams": 1, "temperature": 1.0, "top_k": 50, "top_p": 1.0,
                "repetition_penalty": 1.0, "max_length": 20}
    return {key: defaults.get(key, value) for key, value in fallback.items()}


_DEFAULTS = generation_config_defaults()


@dataclass(frozen=True)
class DecodingSettings:
    """The knobs of one generation; defaults are GenerationConfig's (max_new_tokens mirrors max_length=20)."""

    do_sample: bool = _DEFAULTS["do_sample"]
    temperature: float = _DEFAULTS["temperature"]
    top_k: int = _DEFAULTS["top_k"]
    top_p: float = _DEFAULTS["top_p"]
    repetition_penalty: float = _DEFAULTS["repetition_penalty"]
    num_beams: int = _DEFAULTS["num_beams"]
    max_new_tokens: int = _DEFAULTS["max_length"]
    seed: int = 0
    # more samplers (all off by default, like GenerationConfig: min_p None, typical_p 1, cutoffs 0, n-gram size 0)
    min_p: float = 0.0  # keep tokens with p ≥ min_p × p_max (0 = off)
    typical_p: float = 1.0  # locally typical sampling's mass (1 = off)
    epsilon_cutoff: float = 0.0  # drop tokens with p < ε (0 = off)
    eta_cutoff: float = 0.0  # drop tokens with p < min(η, √η·e^−H) (0 = off)
    no_repeat_ngram_size: int = 0  # forbid repeating any n-gram of this size (0 = off; every mode)
    temperature_last: bool = False  # apply temperature after the truncation samplers instead of first

    @property
    def mode(self) -> str:
        if self.num_beams > 1:
            return "beam search"
        return "sampling" if self.do_sample else "greedy"

    def to_dict(self) -> dict:
        return asdict(self) | {"mode": self.mode}

    @classmethod
    def for_mode(cls, mode: str, **values) -> "DecodingSettings":
        """Settings for a named mode: "greedy", "sampling" or "beam search" (num_beams defaults to 4 there)."""
        if mode not in DECODING_MODES:
            raise ValueError(f"Unknown decoding mode '{mode}'; use one of {', '.join(DECODING_MODES)}.")
        values = dict(values)
        values["do_sample"] = mode == "sampling"
        if mode == "beam search":
            values["num_beams"] = max(2, int(values.get("num_beams") or 4))
        else:
            values["num_beams"] = 1
        return cls(**values)


@dataclass
class CheckedSettings:
    settings: DecodingSettings
    notes: list[str] = field(default_factory=list)


def check_settings(settings: DecodingSettings) -> CheckedSettings:
    """Make settings valid for generate(), explaining every change in a user-facing note.

    temperature 0 → greedy; negative / NaN values → defaults; top_k < 0 → 0 (off); top_p clamped to [0, 1];
    repetition_penalty ≤ 0 → 1 (off); num_beams < 1 → 1; max_new_tokens < 1 → 1.
    """
    notes: list[str] = []
    s = settings
    temperature = float(s.temperature) if s.temperature is not None else 1.0
    if math.isnan(temperature) or temperature < 0:
        notes.append(f"Temperature {s.temperature} is not allowed (it must be ≥ 0); used 1.0.")
        temperature = 1.0
    do_sample = bool(s.do_sample)
    if do_sample and temperature == 0:
        notes.append("Temperature 0 means always taking the most likely token, so it is treated as greedy decoding.")
        do_sample = False
        temperature = 1.0
    top_k = int(s.top_k) if s.top_k is not None else 0
    if top_k < 0:
        notes.append(f"top-k {s.top_k} is negative; top-k filtering turned off (0).")
        top_k = 0
    top_p = float(s.top_p) if s.top_p is not None else 1.0
    if math.isnan(top_p) or not 0.0 <= top_p <= 1.0:
        clamped = 1.0 if math.isnan(top_p) else min(max(top_p, 0.0), 1.0)
        notes.append(f"top-p must lie between 0 and 1; {s.top_p} was changed to {clamped}.")
        top_p = clamped
    penalty = float(s.repetition_penalty) if s.repetition_penalty is not None else 1.0
    if math.isnan(penalty) or penalty <= 0:
        notes.append(f"Repetition penalty must be > 0; {s.repetition_penalty} was changed to 1.0 (off).")
        penalty = 1.0
    num_beams = int(s.num_beams) if s.num_beams is not None else 1
    if num_beams < 1:
        notes.append(f"Number of beams must be ≥ 1; {s.num_beams} was changed to 1.")
        num_beams = 1
    max_new = int(s.max_new_tokens or 0)
    if max_new < 1:
        notes.append(f"Max new tokens must be ≥ 1; {s.max_new_tokens} was changed to 1.")
        max_new = 1
    min_p = _in_range(s.min_p, 0.0, 0.0, 1.0, "min-p", "between 0 and 1 (0 = off)", notes)
    typical_p = _in_range(s.typical_p, 1.0, 0.0, 1.0, "Typical-p", "between 0 and 1 (1 = off)", notes, low_open=True)
    epsilon = _in_range(s.epsilon_cutoff, 0.0, 0.0, 1.0, "ε-cutoff", "at least 0 and below 1 (0 = off)", notes, high_open=True)
    eta = _in_range(s.eta_cutoff, 0.0, 0.0, 1.0, "η-cutoff", "at least 0 and below 1 (0 = off)", notes, high_open=True)
    ngram = int(s.no_repeat_ngram_size or 0)
    if ngram < 0:
        notes.append(f"No-repeat n-gram size must be ≥ 0; {s.no_repeat_ngram_size} was changed to 0 (off).")
        ngram = 0
    checked = replace(s, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
                      repetition_penalty=penalty, num_beams=num_beams, max_new_tokens=max_new, seed=int(s.seed or 0),
                      min_p=min_p, typical_p=typical_p, epsilon_cutoff=epsilon, eta_cutoff=eta,
                      no_repeat_ngram_size=ngram, temperature_last=bool(s.temperature_last))
    return CheckedSettings(checked, notes)


def _in_range(value, off: float, low: float, high: float, name: str, rule: str, notes: list[str],
              low_open: bool = False, high_open: bool = False) -> float:
    """value if it lies in [low, high] (ends open as asked), else `off` with a note."""
    number = float(off if value is None else value)
    bad = (math.isnan(number) or number < low or number > high or (low_open and number == low)
           or (high_open and number == high))
    if bad:
        notes.append(f"{name} must be {rule}; {value} was changed to {off:g} (off).")
        return off
    return number


PIPELINE_LABELS = {
    "repetition_penalty": "repetition penalty",
    "no_repeat_ngram": "no-repeat n-gram",
    "temperature": "temperature",
    "top_k": "top-k",
    "top_p": "top-p",
    "min_p": "min-p",
    "typical_p": "typical-p",
    "epsilon_cutoff": "ε-cutoff",
    "eta_cutoff": "η-cutoff",
}
_PENALTIES = ("repetition_penalty", "no_repeat_ngram")


def logits_pipeline(settings: DecodingSettings, min_tokens_to_keep: int = 1) -> list[tuple[str, LogitsProcessor]]:
    """(key, processor) for every active processor, in the order generate() applies them (see module docstring).

    Conditions mirror ``GenerationMixin._get_logits_processor``: the penalties act in every mode, the warpers only
    when sampling; a warper at its neutral value is left out, as generate() leaves it out.
    """
    steps: list[tuple[str, LogitsProcessor]] = []
    if settings.repetition_penalty is not None and settings.repetition_penalty != 1.0:
        steps.append(("repetition_penalty", RepetitionPenaltyLogitsProcessor(penalty=float(settings.repetition_penalty))))
    if settings.no_repeat_ngram_size and settings.no_repeat_ngram_size > 0:
        steps.append(("no_repeat_ngram", NoRepeatNGramLogitsProcessor(int(settings.no_repeat_ngram_size))))
    if not settings.do_sample:
        return steps
    keep = min_tokens_to_keep
    temperature = ([("temperature", TemperatureLogitsWarper(float(settings.temperature)))]
                   if settings.temperature != 1.0 else [])
    if not settings.temperature_last:
        steps += temperature
    if settings.top_k is not None and settings.top_k != 0:
        steps.append(("top_k", TopKLogitsWarper(top_k=int(settings.top_k), min_tokens_to_keep=keep)))
    if settings.top_p is not None and settings.top_p < 1.0:
        steps.append(("top_p", TopPLogitsWarper(top_p=float(settings.top_p), min_tokens_to_keep=keep)))
    if settings.min_p and settings.min_p > 0:
        steps.append(("min_p", MinPLogitsWarper(min_p=float(settings.min_p), min_tokens_to_keep=keep)))
    if settings.typical_p is not None and settings.typical_p < 1.0:
        steps.append(("typical_p", TypicalLogitsWarper(mass=float(settings.typical_p), min_tokens_to_keep=keep)))
    if settings.epsilon_cutoff and 0.0 < settings.epsilon_cutoff < 1.0:
        steps.append(("epsilon_cutoff", EpsilonLogitsWarper(epsilon=float(settings.epsilon_cutoff), min_tokens_to_keep=keep)))
    if settings.eta_cutoff and 0.0 < settings.eta_cutoff < 1.0:
        steps.append(("eta_cutoff", EtaLogitsWarper(epsilon=float(settings.eta_cutoff), min_tokens_to_keep=keep)))
    if settings.temperature_last:
        steps += temperature
    return steps


def _before_filters(settings: DecodingSettings) -> set[str]:
    """Keys of the processors recorded in the "temperature" stage (penalties, and temperature when it comes first)."""
    return set(_PENALTIES) | (set() if settings.temperature_last else {"temperature"})


def penalty_processors(settings: DecodingSettings) -> LogitsProcessorList:
    """Processors generate() applies in every mode: repetition penalty (CTRL Eq. 2), then no-repeat n-gram."""
    return LogitsProcessorList([p for key, p in logits_pipeline(settings) if key in _PENALTIES])


def temperature_warpers(settings: DecodingSettings) -> LogitsProcessorList:
    """Temperature scaling, applied by generate() only when sampling (empty when ``temperature_last``)."""
    return LogitsProcessorList([p for key, p in logits_pipeline(settings)
                                if key == "temperature" and not settings.temperature_last])


def filter_warpers(settings: DecodingSettings, min_tokens_to_keep: int = 1) -> LogitsProcessorList:
    """The truncation samplers (top-k, top-p, min-p, typical, ε, η), then temperature if ``temperature_last``;
    applied by generate() only when sampling (same order and conditions)."""
    first = _before_filters(settings)
    return LogitsProcessorList([p for key, p in logits_pipeline(settings, min_tokens_to_keep) if key not in first])


def pipeline_kwargs(settings: DecodingSettings) -> dict:
    """generate() keyword arguments for the samplers beyond temperature / top-k / top-p / repetition penalty.

    With ``temperature_last`` the whole sampling pipeline goes in ``logits_processor`` (same classes, our order) and
    generate()'s own warpers are set neutral, since generate() always puts temperature first.
    """
    if settings.do_sample and settings.temperature_last:
        return {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0,
                "logits_processor": LogitsProcessorList([p for _, p in logits_pipeline(settings)])}
    kwargs: dict = {}
    if settings.no_repeat_ngram_size:
        kwargs["no_repeat_ngram_size"] = int(settings.no_repeat_ngram_size)
    if settings.do_sample:
        if settings.min_p:
            kwargs["min_p"] = float(settings.min_p)
        if settings.typical_p < 1.0:
            kwargs["typical_p"] = float(settings.typical_p)
        if settings.epsilon_cutoff:
            kwargs["epsilon_cutoff"] = float(settings.epsilon_cutoff)
        if settings.eta_cutoff:
            kwargs["eta_cutoff"] = float(settings.eta_cutoff)
    return kwargs


# Controls a runtime or mode does not honour, with the reason shown next to the disabled control.
_SAMPLING_ONLY = ("temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "temperature_last")
ENDPOINT_IGNORED = ("typical_p", "epsilon_cutoff", "eta_cutoff", "no_repeat_ngram_size", "temperature_last")


def ignored_controls(mode: str, runtime: str = "transformers") -> dict[str, str]:
    """control → why it has no effect for this decoding mode and runtime ("transformers" or "endpoint")."""
    reasons: dict[str, str] = {}
    if mode != "sampling":
        why = ("beam search keeps the most likely hypotheses, it does not sample" if mode == "beam search"
               else "greedy decoding takes the most likely token, it does not sample")
        for key in _SAMPLING_ONLY:
            reasons[key] = f"Sampling only: {why}."
    if runtime == "endpoint":
        for key in ENDPOINT_IGNORED:
            reasons.setdefault(key, "Not a parameter of the OpenAI-compatible API (nor of vLLM's SamplingParams): "
                                    "an endpoint would ignore it.")
    return reasons


@dataclass
class PipelineStage:
    """The distribution after one processor of the pipeline (``key`` "raw" = the model's own softmax)."""

    key: str
    label: str
    probs: torch.Tensor  # (vocab,)
    kept: torch.Tensor  # bool (vocab,): tokens still possible

    @property
    def kept_count(self) -> int:
        return int(self.kept.sum())


def pipeline_stages(logits: torch.Tensor, settings: DecodingSettings,
                    input_ids: torch.Tensor | None = None) -> list[PipelineStage]:
    """The distribution after each processor, in the order generate() applies them, then what is chosen from.

    Greedy and beam search end with a one-hot "argmax" stage (beam search: the single-beam view of its first step).
    """
    settings = check_settings(settings).settings
    scores = logits.detach().float().reshape(1, -1)
    context = input_ids.reshape(1, -1) if input_ids is not None else torch.zeros((1, 0), dtype=torch.long)
    stages = [PipelineStage("raw", "model (raw softmax)", torch.softmax(scores, -1)[0], torch.isfinite(scores)[0])]
    for key, processor in logits_pipeline(settings):
        scores = processor(context, scores.clone())
        stages.append(PipelineStage(key, PIPELINE_LABELS[key], torch.softmax(scores, -1)[0], torch.isfinite(scores)[0]))
    if not settings.do_sample:
        kept = torch.zeros_like(scores[0], dtype=torch.bool)
        kept[torch.argmax(scores[0])] = True
        stages.append(PipelineStage("argmax", "argmax (greedy pick)", kept.float(), kept))
    return stages


@dataclass
class ShapedDistribution:
    """One next-token distribution at each stage of the pipeline (probabilities over the whole vocabulary)."""

    raw: torch.Tensor  # softmax of the model's logits
    temperature: torch.Tensor  # after repetition penalty and temperature
    filtered: torch.Tensor  # after top-k / top-p: the distribution sampled from (greedy: one-hot on the argmax)
    kept: torch.Tensor  # bool mask of tokens that can still be chosen
    settings: DecodingSettings

    @property
    def kept_count(self) -> int:
        return int(self.kept.sum())

    def entropy_bits(self, stage: str = "filtered") -> float:
        """Shannon entropy H = -Σ p log2 p of a stage's distribution, in bits."""
        probs = getattr(self, stage)
        nonzero = probs[probs > 0]
        return float(-(nonzero * torch.log2(nonzero)).sum())


def shape_distribution(
    logits: torch.Tensor,
    settings: DecodingSettings,
    input_ids: torch.Tensor | None = None,
) -> ShapedDistribution:
    """Redraw one next-token distribution under the settings, without running the model again.

    logits: the model's raw next-token logits, shape (vocab,) or (1, vocab). input_ids: the context (needed only for
    the repetition penalty). In greedy mode the "filtered" stage is one-hot on the most likely token.
    """
    settings = check_settings(settings).settings
    scores = logits.detach().float().reshape(1, -1)
    context = input_ids.reshape(1, -1) if input_ids is not None else torch.zeros((1, 0), dtype=torch.long)
    raw = torch.softmax(scores, dim=-1)
    penalized = penalty_processors(settings)(context, scores)
    tempered = temperature_warpers(settings)(context, penalized)
    if settings.do_sample:
        filtered_scores = filter_warpers(settings)(context, tempered)
        filtered = torch.softmax(filtered_scores, dim=-1)
        kept = torch.isfinite(filtered_scores)
    else:
        kept = torch.zeros_like(scores, dtype=torch.bool)
        kept[0, torch.argmax(tempered, dim=-1)] = True
        filtered = kept.float()
    return ShapedDistribution(
        raw=raw[0], temperature=torch.softmax(tempered, dim=-1)[0], filtered=filtered[0], kept=kept[0], settings=settings
    )


def top_tokens(probs: torch.Tensor, n: int = 10) -> list[tuple[int, float]]:
    """The n most likely (token id, probability) pairs of a distribution, most likely first."""
    n = max(1, min(int(n), probs.numel()))
    values, indices = torch.topk(probs, n)
    return [(int(i), float(v)) for i, v in zip(indices.tolist(), values.tolist())]


def shape_table(shaped: ShapedDistribution, decode, n: int = 15) -> list[dict]:
    """Rows for the n most likely raw tokens: probability at each stage and whether it survives filtering."""
    rows = []
    for token_id, raw_p in top_tokens(shaped.raw, n):
        rows.append({
            "token_id": token_id,
            "token": decode(token_id),
            "raw": raw_p,
            "temperature": float(shaped.temperature[token_id]),
            "filtered": float(shaped.filtered[token_id]),
            "kept": bool(shaped.kept[token_id]),
        })
    return rows
