"""How long a live fine-tune will take, said before it starts (issue 32: 10,000 steps were accepted without a word
although the pace measured here made it hours).

The pace is measured: every finished run records its seconds per trained token (``record_pace``, from the runner),
per method and device, in the process's one pace store (``core.common.pace``), and ``estimate_run`` scales it to the settings at hand (tokens per step = batch × the
tokens of a bundled example, at most the sequence length). Before any run has been measured in this process the
estimate is the plan's training FLOPs per token (``plan_finetune``'s ``flops_per_token``) at ``CPU_FLOPS_PER_S``
(core.measure.harness: 2 × 10¹⁰ FLOP/s, a stated guess for PyTorch on a few CPU cores), and says so.

Plain Python (no Streamlit).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.common.pace import forget, recall, remember
from core.common.units import format_duration_s, format_magnitude
from core.measure.harness import CPU_FLOPS_PER_S

EXAMPLE_TOKENS = 61
"""Tokens of a typical bundled training example in the chat template (they are 55–67; padding is not trained)."""


def _kind(method: str) -> str:
    return f"finetune {method} token"


def record_pace(method: str, device_type: str, steps: Sequence, batch_size: int) -> dict | None:
    """Remember a finished run's pace (the latest per method, with the device it ran on): seconds per trained token
    over its steps (after the first, which warms up, when there are more), with the seconds per step at its batch.
    ``steps``: objects or dicts with ``tokens`` and ``step_s``. Returns the record (None when nothing was trained)."""
    rows = [s if isinstance(s, Mapping) else {"tokens": s.tokens, "step_s": s.step_s} for s in steps]
    rows = rows[1:] if len(rows) > 1 else rows
    tokens = sum(r["tokens"] for r in rows)
    seconds = sum(r["step_s"] for r in rows)
    if not rows or tokens <= 0 or seconds <= 0:
        return None
    record = {"s_per_token": seconds / tokens, "s_per_step": seconds / len(rows), "batch_size": int(batch_size),
              "device_type": device_type}
    remember(_kind(method), record)
    return record


def measured_pace(method: str) -> dict | None:
    """The last recorded pace of ``method`` in this process (this server's device), or None."""
    return recall(_kind(method))


def forget_paces() -> None:
    """Drop every recorded pace (tests)."""
    forget()


def tokens_per_step(settings) -> int:
    """Trained tokens of one step: batch × a bundled example's tokens, cut at the sequence length."""
    return int(settings.batch_size) * min(int(settings.seq_len), EXAMPLE_TOKENS)


def estimate_run(settings, plan: Mapping | None = None) -> dict:
    """Predicted training time of ``settings``: ``seconds``, ``s_per_step``, ``measured`` (True: from a run measured
    here; False: from ``plan["flops_per_token"]`` at ``CPU_FLOPS_PER_S``, None without a plan) and ``text``, one
    sentence for the page that says which."""
    steps, per_step_tokens = int(settings.steps), tokens_per_step(settings)
    pace = measured_pace(settings.method)
    if pace is not None:
        s_per_step = pace["s_per_token"] * per_step_tokens
        basis = (f"at {s_per_step:.2g} s/step (the pace last measured here, {pace['s_per_step']:.2g} s/step at batch "
                 f"{pace['batch_size']}, scaled to these settings)")
        measured = True
    elif plan is not None and plan.get("flops_per_token"):
        s_per_step = plan["flops_per_token"] * per_step_tokens / CPU_FLOPS_PER_S
        basis = (f"at an assumed {s_per_step:.2g} s/step: no run has been measured here yet, so this is the plan's "
                 f"{format_magnitude(plan['flops_per_token'], digits=1)} FLOPs per token at "
                 f"{format_magnitude(CPU_FLOPS_PER_S, digits=0)} FLOP/s, a guess for a few CPU cores")
        measured = False
    else:
        return {"seconds": None, "s_per_step": None, "measured": None,
                "text": "No time estimate: no run measured here yet and no plan to predict from."}
    seconds = s_per_step * steps
    return {"seconds": seconds, "s_per_step": s_per_step, "measured": measured,
            "text": f"Training {steps:,} steps takes about {format_duration_s(seconds)} {basis}; loading the model "
                    "and the comparison answers come on top."}
