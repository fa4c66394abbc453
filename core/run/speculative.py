"""Speculative decoding, watched: transformers' prompt-lookup decoding and assisted generation with a draft model,
with the numbers that explain them (acceptance rate, tokens per target forward pass, speed-up over plain decoding).

Sources: speculative decoding — Leviathan, Kalman & Matias 2023 ("Fast Inference from Transformers via Speculative
Decoding", ICML, §2–3: a cheap draft proposes γ tokens, the target verifies them in one forward pass, greedy output is
unchanged); prompt-lookup decoding — Saxena 2023 (https://github.com/apoorvumang/prompt-lookup-decoding: candidates
are the tokens that followed the last n-gram's earlier occurrence in the prompt); transformers' implementation —
https://huggingface.co/docs/transformers/generation_strategies#speculative-decoding (``assistant_model=``,
``prompt_lookup_num_tokens=``). Self-drafting with the target's own first layers — Zhang et al. 2024 ("Draft &
Verify: Lossless Large Language Model Acceleration via Self-Speculative Decoding", ACL, §3) and LayerSkip
(Elhoushi et al. 2024, §4): the only draft here that shares the bundled model's tokenizer offline.

Counting: a hook counts the target model's forward passes and the length of each input. Each verification pass
yields (accepted + 1) tokens, so accepted = new tokens − target passes; proposed = Σ (input length − the one
already-accepted token, or the prompt for the first pass).
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import asdict, dataclass, field

import torch
from transformers import AutoModelForCausalLM

from core.common.scheduler import GENERATION_QUEUE
from core.run.generation import GenerationInputError, prepare_prompt

METHODS = ("plain", "prompt_lookup", "assisted")
METHOD_LABELS = {
    "plain": "plain greedy decoding",
    "prompt_lookup": "prompt-lookup decoding",
    "assisted": "assisted generation (draft model)",
}
DEFAULT_LOOKUP_TOKENS = 10  # prompt_lookup_num_tokens: candidate tokens copied from the prompt per step
DEFAULT_DRAFT_TOKENS = 5  # num_assistant_tokens: tokens the draft proposes per step (constant schedule)
DEFAULT_DRAFT_LAYERS = 28  # self-draft depth for SmolLM2 (30 blocks): the logit lens shows answers settle late

PROMPTS = {
    "copying": (
        "Extract the sentence about the harbour from this text, word for word.\n\nText: The town council met on "
        "Tuesday to discuss the budget. The old harbour will be dredged in May so that larger fishing boats can dock "
        "safely at low tide. Parking fees in the centre will not change this year.\n\nThe sentence about the harbour:"
    ),
    "open-ended": "Write a short poem about a lighthouse keeper who finds a message in a bottle.",
}
"""Where it helps (the answer copies the prompt) and where it doesn't (new text)."""


@dataclass(frozen=True)
class SpeculativeRun:
    method: str
    token_ids: list[int]
    total_s: float
    target_forward_passes: int
    proposed_tokens: int  # draft / lookup candidates the target verified
    accepted_tokens: int  # candidates the target agreed with
    text: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def acceptance_rate(self) -> float | None:
        """accepted / proposed candidates (None when nothing was proposed, e.g. plain decoding)."""
        return self.accepted_tokens / self.proposed_tokens if self.proposed_tokens else None

    @property
    def tokens_per_forward(self) -> float:
        """New tokens per forward pass of the target model (plain decoding: 1)."""
        return self.new_tokens / self.target_forward_passes if self.target_forward_passes else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.total_s if self.total_s > 0 else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"new_tokens": self.new_tokens, "acceptance_rate": self.acceptance_rate,
                               "tokens_per_forward": self.tokens_per_forward, "tokens_per_s": self.tokens_per_s}


def self_draft(loaded, layers: int):
    """A draft model made of the target's own first `layers` blocks, final norm and unembedding (weights shared, no
    copy): same tokenizer by construction. Llama-family models (``model.model.layers``) only; None otherwise."""
    model = loaded.model
    inner = getattr(model, "model", None)
    blocks = getattr(inner, "layers", None)
    if blocks is None or not 1 <= int(layers) < len(blocks):
        return None
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = int(layers)
    if getattr(config, "layer_types", None):
        config.layer_types = list(config.layer_types)[: int(layers)]
    with torch.device("meta"):
        draft = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    for name, module in inner.named_children():  # embeddings, norm, rotary embedding: shared
        if name != "layers":
            setattr(draft.model, name, module)
    draft.model.layers = torch.nn.ModuleList(list(blocks)[: int(layers)])
    draft.lm_head = model.lm_head
    draft.generation_config = copy.deepcopy(model.generation_config)
    draft.eval()
    return draft


class _PassCounter:
    """Input length of every forward pass of the target made by this thread (the model may be shared by sessions)."""

    def __init__(self, model):
        self.lengths: list[int] = []
        self.thread = threading.get_ident()
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module, args, kwargs):
        if threading.get_ident() != self.thread:
            return
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        if ids is not None:
            self.lengths.append(int(ids.shape[-1]))

    def remove(self) -> None:
        self.handle.remove()


def run_speculative(loaded, prompt: str, method: str = "prompt_lookup", max_new_tokens: int = 64,
                    lookup_tokens: int = DEFAULT_LOOKUP_TOKENS, draft=None, draft_tokens: int = DEFAULT_DRAFT_TOKENS,
                    use_chat_template: bool = False) -> SpeculativeRun:
    """Greedy generation with plain decoding, prompt lookup, or a draft model, counting the target's forward passes.

    Greedy only: with sampling the output distribution is preserved (Leviathan et al. 2023, Thm. 1) but the tokens
    are not, so "identical output" is the check that only greedy allows.
    """
    if method not in METHODS:
        raise GenerationInputError(f"Unknown method '{method}'; use one of {', '.join(METHODS)}.")
    prepared = prepare_prompt(loaded, prompt, max_new_tokens, use_chat_template)
    kwargs = {"max_new_tokens": prepared.max_new_tokens, "do_sample": False, "num_beams": 1,
              "pad_token_id": loaded.tokenizer.pad_token_id}
    notes = list(prepared.notes)
    if method == "prompt_lookup":
        kwargs["prompt_lookup_num_tokens"] = int(lookup_tokens)
    elif method == "assisted":
        if draft is None:
            raise GenerationInputError("Assisted generation needs a draft model with the same tokenizer.")
        kwargs["assistant_model"] = draft
    input_ids = prepared.input_ids.to(loaded.device)
    counter = _PassCounter(loaded.model)
    try:  # one model run at a time (core.common.scheduler): the timings compare methods, not other sessions' load
        with GENERATION_QUEUE.admit(f"speculative:{method}"), torch.no_grad():
            if method == "assisted":  # the cached draft is shared by sessions: set its schedule only in our turn
                draft.generation_config.num_assistant_tokens = int(draft_tokens)
                draft.generation_config.num_assistant_tokens_schedule = "constant"
                draft.generation_config.assistant_confidence_threshold = 0.0
            started = time.perf_counter()
            out = loaded.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
            elapsed = time.perf_counter() - started
    finally:
        counter.remove()
    new = out[0, prepared.prompt_tokens:].tolist()
    passes = len(counter.lengths)
    if method == "plain":
        proposed = accepted = 0
    else:
        proposed = sum(max(0, n - (prepared.prompt_tokens if i == 0 else 1)) for i, n in enumerate(counter.lengths))
        accepted = max(0, len(new) - passes)
    return SpeculativeRun(method=method, token_ids=new, total_s=elapsed, target_forward_passes=passes,
                          proposed_tokens=proposed, accepted_tokens=min(accepted, proposed),
                          text=loaded.tokenizer.decode(new, skip_special_tokens=True), notes=notes)


@dataclass(frozen=True)
class SpeculativeComparison:
    prompt_name: str
    runs: dict[str, SpeculativeRun]  # method → run

    @property
    def identical(self) -> bool:
        """Every method produced the same greedy tokens as plain decoding."""
        plain = self.runs["plain"].token_ids
        return all(run.token_ids == plain for run in self.runs.values())

    def speedup(self, method: str) -> float | None:
        """Wall-time speed-up over plain decoding: t_plain / t_method (tokens are identical, so time is the measure)."""
        base, run = self.runs.get("plain"), self.runs.get(method)
        if base is None or run is None or run.total_s <= 0:
            return None
        return base.total_s / run.total_s

    def rows(self) -> list[dict]:
        return [{"prompt": self.prompt_name, "method": METHOD_LABELS[m], "new_tokens": r.new_tokens,
                 "target_forward_passes": r.target_forward_passes, "tokens_per_forward": r.tokens_per_forward,
                 "acceptance_rate": r.acceptance_rate, "time_s": r.total_s, "speedup": self.speedup(m),
                 "same_tokens_as_plain": r.token_ids == self.runs["plain"].token_ids}
                for m, r in self.runs.items()]


def compare_methods(loaded, prompt: str, prompt_name: str = "prompt", max_new_tokens: int = 64, draft=None,
                    **options) -> SpeculativeComparison:
    """Plain, prompt-lookup and (with a draft) assisted generation on one prompt."""
    runs = {"plain": run_speculative(loaded, prompt, "plain", max_new_tokens, **options),
            "prompt_lookup": run_speculative(loaded, prompt, "prompt_lookup", max_new_tokens, **options)}
    if draft is not None:
        runs["assisted"] = run_speculative(loaded, prompt, "assisted", max_new_tokens, draft=draft, **options)
    return SpeculativeComparison(prompt_name, runs)
