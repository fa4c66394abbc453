"""Seconds of one engine iteration as a function of what is in its batch, from one of two sources.

A batch is described by four numbers: ``prefill_tokens`` (prompt tokens computed this step, over every chunk),
``prefill_keys`` (Σ over those tokens of the keys each attends to: a chunk of n tokens after s cached ones adds
n·s + n(n+1)/2), ``decode_seqs`` (sequences decoding one token each) and ``decode_context_tokens`` (their cached
tokens, summed). Both sources accept numpy arrays (one element per step) so a simulator can price many steps at once.

- ``RooflineStepModel``: a catalog GPU, the planner's roofline per step (core.plan.serving_step; weight and KV reads
  against bandwidth, FLOPs against FLOP/s, a fixed overhead). No step is faster than that bound.
- ``LinearStepModel``: fitted from a profile of a real endpoint (core.serve.sim.profile):
  t = c0 + c1·prefill_tokens + c2·prefill_keys + c3·decode_seqs + c4·decode_context_tokens
  + c5·prefill_seqs (sequences whose prompt is computed in the step), non-negative coefficients. This is the shape of Vidur's execution-time predictor (Agrawal et al. 2024, "Vidur: A Large-Scale
  Simulation Framework for LLM Inference", MLSys, §4: per-operation times linear in tokens, attention in tokens ×
  context) collapsed to one model per step, and of the per-iteration latency model of Orca-style batching
  (Yu et al. 2022, "Orca", OSDI §5). ``request_overhead_s`` is the fixed time a request spends outside the engine
  (HTTP, tokenization, detokenization), added once to TTFT.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.plan.serving import Engine, ServingModel, make_engine, serving_model
from core.plan.serving_step import StepRoofline, step_roofline

def chunk_keys(tokens, start):
    """(query, key) pairs of a prefill chunk of ``tokens`` new tokens after ``start`` cached ones (causal)."""
    n = np.asarray(tokens, dtype=float)
    return n * np.asarray(start, dtype=float) + n * (n + 1) / 2


@dataclass(frozen=True)
class LinearStepModel:
    """Fitted step time (seconds): c0 + c1·P + c2·K + c3·D + c4·C, and the fixed time per request outside the
    engine. ``source`` says where the coefficients came from."""

    c0_s: float
    c1_s_per_prefill_token: float
    c2_s_per_prefill_key: float
    c3_s_per_decode_seq: float
    c4_s_per_context_token: float
    request_overhead_s: float = 0.0
    c5_s_per_prefill_seq: float = 0.0  # each sequence whose prompt is computed in the step (input preparation,
    # sampling of its first token)
    source: str = "fitted"
    frontend_serial_s: float = 0.0  # part of the overhead the server's front end spends one request at a time

    def step_s(self, prefill_tokens, prefill_keys, decode_seqs, decode_context_tokens, prefill_seqs=0):
        return (self.c0_s + self.c5_s_per_prefill_seq * np.asarray(prefill_seqs, dtype=float) + self.c1_s_per_prefill_token * np.asarray(prefill_tokens, dtype=float)
                + self.c2_s_per_prefill_key * np.asarray(prefill_keys, dtype=float)
                + self.c3_s_per_decode_seq * np.asarray(decode_seqs, dtype=float)
                + self.c4_s_per_context_token * np.asarray(decode_context_tokens, dtype=float))

    def coefficients(self) -> np.ndarray:
        return np.array([self.c0_s, self.c1_s_per_prefill_token, self.c2_s_per_prefill_key,
                         self.c3_s_per_decode_seq, self.c4_s_per_context_token, self.c5_s_per_prefill_seq])

    def to_dict(self) -> dict:
        return asdict(self) | {"kind": "linear"}


@dataclass(frozen=True)
class RooflineStepModel:
    """The roofline of ``model`` on a catalog GPU (``engine``), per step."""

    model: ServingModel
    engine: Engine
    roofline: StepRoofline
    request_overhead_s: float = 0.0
    source: str = "roofline"

    def step_s(self, prefill_tokens, prefill_keys, decode_seqs, decode_context_tokens, prefill_seqs=0):
        return self.roofline.step_s(prefill_tokens, prefill_keys, decode_seqs, decode_context_tokens)

    def to_dict(self) -> dict:
        return {"kind": "roofline", "model": self.model.name, "gpu": self.engine.gpu.name,
                "weight_format": self.engine.weight_format, "tensor_parallel": self.engine.tensor_parallel,
                "bandwidth_efficiency": self.engine.bandwidth_efficiency, "mfu": self.engine.mfu,
                "step_overhead_s": self.engine.step_overhead_s, "request_overhead_s": self.request_overhead_s}


def roofline_step_model(model, gpu, *, weight_format: str = "bf16", kv_dtype: str = "bf16", tensor_parallel: int = 1,
                        bandwidth_efficiency: float | None = None, mfu: float | None = None,
                        step_overhead_s: float = 0.0) -> RooflineStepModel:
    """Step model of ``model`` (catalog id, config dict or parameter count) on catalog GPU ``gpu``; the planner's
    validation (ServingInputError) for bad names and values."""
    m = serving_model(model)
    engine = make_engine(gpu, weight_format=weight_format, kv_dtype=kv_dtype, tensor_parallel=tensor_parallel,
                         bandwidth_efficiency=bandwidth_efficiency, mfu=mfu, step_overhead_s=step_overhead_s)
    return RooflineStepModel(m, engine, step_roofline(m, engine))


def step_model_from_dict(d: dict) -> LinearStepModel:
    """A LinearStepModel from its to_dict(); ValueError when a coefficient is missing or negative."""
    names = ("c0_s", "c1_s_per_prefill_token", "c2_s_per_prefill_key", "c3_s_per_decode_seq",
             "c4_s_per_context_token")
    try:
        values = [float(d[n]) for n in names]
        overhead = float(d.get("request_overhead_s", 0.0))
        values.append(float(d.get("c5_s_per_prefill_seq", 0.0)))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"A step model needs the numbers {', '.join(names)}.") from None
    if any(not np.isfinite(v) or v < 0 for v in values + [overhead]):
        raise ValueError("Step-model coefficients must be finite and non-negative.")
    if values[0] <= 0 and values[1] <= 0:
        raise ValueError("A step model needs a positive time per step or per prefill token.")
    serial = float(d.get("frontend_serial_s", 0.0) or 0.0)
    if not np.isfinite(serial) or serial < 0:
        raise ValueError("The front end's serial time must be finite and non-negative.")
    return LinearStepModel(*values[:5], request_overhead_s=overhead, c5_s_per_prefill_seq=values[5],
                           source=str(d.get("source", "fitted")), frontend_serial_s=serial)
