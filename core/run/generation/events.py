"""What a streamed generation yields: one ``StepEvent`` per token with the distribution behind it at each recorded
stage, and the ``GenerationResult`` at the end."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.run.generation.prepare import PreparedPrompt
from core.run.sampling import DecodingSettings


STAGES = ("raw", "temperature", "filtered")
STAGE_LABELS = {
    "raw": "model (raw softmax)",
    "temperature": "after penalties & temperature",
    "filtered": "after top-k / top-p / min-p / typical / ε / η (sampled from)",
}

# ---------------------------------------------------------------------------------------------------------------------
# Streaming


@dataclass
class Alternative:
    token_id: int
    token: str
    probability: float


@dataclass
class StepEvent:
    """One generated token and the distributions it came from."""

    index: int
    token_id: int
    token: str  # the token on its own, decoded
    text: str  # what this step appends to the completion (may be "" while a multi-byte character is incomplete)
    probability: float  # chosen token's probability under the model's raw softmax
    adjusted_probability: float  # ... after repetition penalty and temperature
    sampled_probability: float  # ... in the distribution it was drawn from (greedy: 1.0)
    raw_rank: int  # 1 = the model's most likely token
    kept_tokens: int  # how many tokens could have been chosen at this step
    alternatives: dict[str, list[Alternative]]  # stage → top alternatives, most likely first
    time_s: float  # seconds since the generation started
    logits: torch.Tensor | None = None  # raw next-token logits (only with keep_logits=True)
    streamed: bool = True
    # exact (raw, adjusted, sampled) probabilities of every token shown in any stage's list, and the chosen one
    stage_probabilities: dict[int, tuple[float, float, float]] = field(default_factory=dict)

    def to_row(self) -> dict:
        return {
            "step": self.index, "token_id": self.token_id, "token": self.token,
            "p_raw": self.probability, "p_adjusted": self.adjusted_probability, "p_sampled": self.sampled_probability,
            "raw_rank": self.raw_rank, "kept_tokens": self.kept_tokens, "time_s": self.time_s,
            "top_raw": ", ".join(f"{a.token!r}:{a.probability:.3f}" for a in self.alternatives.get("raw", [])[:5]),
        }


def decode_tokens_per_s(steps: list[StepEvent]) -> float | None:
    """Decode speed after the first token: (n − 1) / (t_last − t_first), in tokens/s; None below two timed tokens."""
    if len(steps) < 2:
        return None
    span = steps[-1].time_s - steps[0].time_s
    return (len(steps) - 1) / span if span > 0 else None


@dataclass
class GenerationResult:
    prompt: PreparedPrompt
    settings: DecodingSettings
    steps: list[StepEvent]
    completion: str
    token_ids: list[int]
    stop_reason: str  # "eos" | "max_new_tokens" | "time_limit" | "stopped"
    ttft_s: float | None  # the model's own: from the start of generate() to the first token
    total_s: float
    notes: list[str] = field(default_factory=list)
    streamed: bool = True
    queue_wait_s: float = 0.0  # time waiting for a turn at the model (core.common.scheduler) before generate() started

    @property
    def user_ttft_s(self) -> float | None:
        """Time to first token as the user saw it: the queue wait plus the model's own time to first token."""
        return None if self.ttft_s is None else self.queue_wait_s + self.ttft_s

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def tokens_per_s(self) -> float:
        """End-to-end throughput: generated tokens / wall time including the prompt's prefill."""
        return self.new_tokens / self.total_s if self.total_s > 0 else 0.0

    @property
    def mean_probability(self) -> float:
        """Mean of the model's raw probability of each chosen token (0 when nothing was generated)."""
        return sum(step.probability for step in self.steps) / len(self.steps) if self.steps else 0.0

    @property
    def decode_tokens_per_s(self) -> float | None:
        return decode_tokens_per_s(self.steps)

    def to_dict(self) -> dict:
        return {
            "prompt": self.prompt.text, "prompt_tokens": self.prompt.prompt_tokens,
            "truncated_prompt_tokens": self.prompt.truncated_tokens, "settings": self.settings.to_dict(),
            "completion": self.completion, "new_tokens": self.new_tokens, "stop_reason": self.stop_reason,
            "ttft_s": self.ttft_s, "queue_wait_s": self.queue_wait_s,
            "user_ttft_s": self.user_ttft_s, "total_s": self.total_s, "tokens_per_s": self.tokens_per_s,
            "decode_tokens_per_s": self.decode_tokens_per_s, "notes": self.notes,
            "steps": [
                step.to_row() | {"alternatives": {k: [vars(a) for a in v] for k, v in step.alternatives.items()}}
                for step in self.steps
            ],
        }
