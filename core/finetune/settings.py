"""What one live fine-tune runs with: ``FinetuneSettings`` (method, LoRA rank / alpha / targets or prompt tuning's
virtual tokens, learning rate, steps, sequence length, batch) and ``check_settings``, which validates them for the
bundled SmolLM2 and predicts the run's peak memory with ``core.plan.finetune.plan_finetune`` before anything loads.

Plain Python (no Streamlit).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from core.finetune.data import min_seq_len
from core.plan.finetune import PROMPT_TUNING, FinetuneError, plan_finetune

TARGET_CHOICES = ("attention", "mlp", "all-linear")
COMPARE_MAX_NEW_TOKENS = 40
LIVE_METHODS = ("lora", "prompt-tuning")
# Soft prompts need larger steps than LoRA (Lester et al. train them at 0.3 with Adafactor); 0.03 with AdamW learns
# the bundled template in the default 12 steps here.
DEFAULT_LEARNING_RATES = {"lora": 2e-3, "prompt-tuning": 3e-2}


@dataclass(frozen=True)
class FinetuneSettings:
    """One live run. Defaults show the answer template within ~2 minutes on 2 free CPU cores (6 steps of batch 4
    already did on this machine; see the README)."""
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("attention",)
    learning_rate: float = 2e-3
    steps: int = 12
    seq_len: int = 80  # the longest bundled example is 67 tokens in the chat template
    batch_size: int = 4
    seed: int = 0
    compare_max_new_tokens: int = COMPARE_MAX_NEW_TOKENS  # greedy tokens per comparison answer
    method: str = "lora"  # or "prompt-tuning" (then rank, alpha, dropout and target_modules are not used)
    num_virtual_tokens: int = 20  # prompt tuning's soft tokens

    def to_dict(self) -> dict:
        return asdict(self)


def check_settings(settings: FinetuneSettings, config=None, free_bytes: float | None = None,
                   device_type: str = "cpu") -> dict:
    """Validate ``settings`` for the bundled model and predict the run's peak memory with ``plan_finetune``.

    Raises FinetuneError with a clear message for a rank of 0 or above the smallest adapted layer, no target module
    of the model, out-of-range numbers, or a predicted peak above ``free_bytes`` (default: free memory of the
    device, ``core.plan.hardware.free_device_memory_bytes``). Returns the plan (``plan_finetune``'s dict) with
    ``required_bytes``: the plan is for a 16-bit frozen base, and this run keeps the base and its activations in
    fp32, so the required memory is bounded by twice the plan's peak.
    """
    s = settings
    if config is None:
        config = bundled_config()
    if not (isinstance(s.learning_rate, (int, float)) and math.isfinite(s.learning_rate) and 0 < s.learning_rate <= 1):
        raise FinetuneError(f"Learning rate must be in (0, 1], got {s.learning_rate!r}.")
    if s.method not in LIVE_METHODS:
        raise FinetuneError(f"Unknown method {s.method!r}: use one of {', '.join(LIVE_METHODS)}.")
    lora = s.method == "lora"
    if lora and not (isinstance(s.alpha, (int, float)) and math.isfinite(s.alpha) and s.alpha > 0):
        raise FinetuneError(f"LoRA alpha must be a positive number, got {s.alpha!r}.")
    if not lora and (isinstance(s.num_virtual_tokens, bool) or not isinstance(s.num_virtual_tokens, int)
                     or not 1 <= s.num_virtual_tokens <= 256):
        raise FinetuneError(f"Virtual tokens must be a whole number from 1 to 256, got {s.num_virtual_tokens!r}.")
    if isinstance(s.steps, bool) or not isinstance(s.steps, int) or not 1 <= s.steps <= 10_000:
        raise FinetuneError(f"Steps must be a whole number from 1 to 10,000, got {s.steps!r}.")
    if isinstance(s.compare_max_new_tokens, bool) or not isinstance(s.compare_max_new_tokens, int) or not (
            1 <= s.compare_max_new_tokens <= 512):
        raise FinetuneError("Comparison answers must be 1 to 512 tokens long, got "
                            f"{s.compare_max_new_tokens!r}.")
    shortest = min_seq_len()
    if isinstance(s.seq_len, int) and not isinstance(s.seq_len, bool) and s.seq_len < shortest:
        raise FinetuneError(f"Sequence length {s.seq_len} tokens is too short: the shortest bundled example's prompt "
                            f"takes {shortest - 1} tokens in the chat template, leaving no answer to learn. Use at "
                            f"least {shortest} tokens (80 keeps every answer whole).")
    if lora:
        plan = plan_finetune(config, "lora", s.rank, list(s.target_modules), s.seq_len, s.batch_size,
                             optimizer="adamw", dropout=float(s.dropout), device_type=device_type)
    else:
        plan = plan_finetune(config, PROMPT_TUNING, None, None, s.seq_len, s.batch_size, optimizer="adamw",
                             device_type=device_type, num_virtual_tokens=s.num_virtual_tokens)
    plan["required_bytes"] = 2.0 * plan["total_bytes"]  # the plan is for a 16-bit base; this run is fp32 here
    if free_bytes is None:
        from core.plan.hardware import free_device_memory_bytes
        free_bytes = free_device_memory_bytes(device_type)
    plan["free_bytes"] = float(free_bytes)
    if plan["required_bytes"] > free_bytes:
        raise FinetuneError(
            f"This run would not fit: predicted peak {plan['total_bytes'] / 1e9:,.2f} GB for a 16-bit base (up to "
            f"{plan['required_bytes'] / 1e9:,.2f} GB in fp32 on this device, {plan['trainable_params']:,} trainable "
            f"parameters) but only {free_bytes / 1e9:,.2f} GB is free. Lower the sequence length or batch size.")
    return plan


_CONFIG: list[dict] = []


def bundled_config() -> dict:
    """The bundled decoder's config as a dict (for ``plan_finetune``), read once from its converted folder."""
    if not _CONFIG:
        from core.run.models import ensure_bundled_decoder
        _CONFIG.append(json.loads((ensure_bundled_decoder() / "config.json").read_text()))
    return dict(_CONFIG[0])
