"""Decoding settings and next-token distribution shaping with transformers' own logits processors.

The processors are the classes ``GenerationMixin.generate()`` instantiates, applied in the same order
(``GenerationMixin._get_logits_processor`` in transformers 5.x): repetition penalty first, then — only when sampling —
temperature, top-k, top-p. So a distribution shown here is exactly the one ``generate()`` samples from.

Sources: temperature and top-k sampling — Fan, Lewis & Dauphin 2018 ("Hierarchical Neural Story Generation", §5.4);
nucleus (top-p) sampling — Holtzman et al. 2020 ("The Curious Case of Neural Text Degeneration", Eq. 3);
repetition penalty — Keskar et al. 2019 (CTRL, §4.1, Eq. 2).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
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
    checked = replace(s, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
                      repetition_penalty=penalty, num_beams=num_beams, max_new_tokens=max_new, seed=int(s.seed or 0))
    return CheckedSettings(checked, notes)


def penalty_processors(settings: DecodingSettings) -> LogitsProcessorList:
    """Processors generate() applies in every mode (here: the repetition penalty, CTRL Eq. 2)."""
    processors = LogitsProcessorList()
    if settings.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(penalty=float(settings.repetition_penalty)))
    return processors


def temperature_warpers(settings: DecodingSettings) -> LogitsProcessorList:
    """Temperature scaling, applied by generate() only when sampling."""
    warpers = LogitsProcessorList()
    if settings.do_sample and settings.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(float(settings.temperature)))
    return warpers


def filter_warpers(settings: DecodingSettings, min_tokens_to_keep: int = 1) -> LogitsProcessorList:
    """Top-k then top-p truncation, applied by generate() only when sampling (same order and conditions)."""
    warpers = LogitsProcessorList()
    if settings.do_sample:
        if settings.top_k is not None and settings.top_k != 0:
            warpers.append(TopKLogitsWarper(top_k=int(settings.top_k), min_tokens_to_keep=min_tokens_to_keep))
        if settings.top_p is not None and settings.top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p=float(settings.top_p), min_tokens_to_keep=min_tokens_to_keep))
    return warpers


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
