"""The profiling probe of a real endpoint, and the step-time model fitted from it (core.serve.sim.step_model).

The probe sends, through the load test's own client (core.serve.load_test: streamed completions, ignore_eos on
vLLM, distinct prompts of exact token counts), at most 24 requests of its own workload — never the workload being
predicted: single requests at five prompt lengths (each alone, so its TTFT is one prefill step plus the fixed time
outside the engine, and its gaps between tokens are decode steps of one sequence at a growing context), then 2, 4
and 8 short requests sent together (their gaps are decode steps of 2, 4 and 8 sequences). As Vidur profiles each
operation once per model and device and predicts every batch from that (Agrawal et al. 2024, MLSys, §4), the fit
is a non-negative least squares (Lawson & Hanson 1974, "Solving Least Squares Problems", ch. 23; scipy.optimize.nnls)
of every observation's seconds on the step features, relative (each row divided by its measured time) so short
decode steps weigh as much as long prefills.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from core.serve.capabilities import probe as probe_capabilities
from core.serve.endpoints import Endpoint, EndpointError
from core.serve.load_test import new_seed, run_load_test_detailed
from core.serve.sim.scheduler import VLLM_CPU_DEFAULTS, VLLM_GPU_DEFAULTS, EngineConfig, SimulationInputError
from core.serve.sim.step_model import LinearStepModel, chunk_keys, step_model_from_dict
from core.serve.vllm_metrics import try_read_counters
from core.serve.workload import tokenizer_for

PROBE_PROMPTS = (64, 256, 512, 1024, 1536)
PROBE_SINGLE_OUTPUT = 24
PROBE_BATCHES = (2, 4, 8)
PROBE_BATCH_PROMPT, PROBE_BATCH_OUTPUT = 32, 32
PROFILE_VERSION = 1
FRONTEND_SERIAL_S = 0.001


@dataclass(frozen=True)
class Observation:
    """One measured step (or TTFT): its features, measured seconds, and whether it includes the request overhead."""

    kind: str  # "prefill" (a TTFT), "step" (between two groups of first tokens) or "decode" (a median gap)
    prefill_tokens: int
    prefill_keys: float
    decode_seqs: int
    decode_context_tokens: float
    measured_s: float
    predicted_s: float = float("nan")
    prefill_seqs: int = 0

    @property
    def error_pct(self) -> float:
        return (self.predicted_s - self.measured_s) / self.measured_s * 100 if self.measured_s else float("nan")

    def to_dict(self) -> dict:
        return asdict(self) | {"error_pct": self.error_pct}


@dataclass(frozen=True)
class Profile:
    """A fitted endpoint profile: the step model, the engine's settings, every observation with its residual."""

    model: str
    base_url: str
    step_model: LinearStepModel
    engine: dict  # EngineConfig fields
    observations: tuple = ()
    created: str = ""
    probe_seconds: float = 0.0
    served_model: dict | str | None = None  # what core.plan can plan for the served model (config dict / catalog id)
    notes: tuple = field(default_factory=tuple)

    def engine_config(self, **overrides) -> EngineConfig:
        values = {k: v for k, v in (self.engine | {k: v for k, v in overrides.items() if v is not None}).items()
                  if k in EngineConfig.__dataclass_fields__}
        return EngineConfig(**values)

    @property
    def residual_rms_pct(self) -> float:
        errors = [o.error_pct for o in self.observations if math.isfinite(o.error_pct)]
        return float(np.sqrt(np.mean(np.square(errors)))) if errors else float("nan")

    def to_dict(self) -> dict:
        return {"version": PROFILE_VERSION, "model": self.model, "base_url": self.base_url,
                "step_model": self.step_model.to_dict(), "engine": dict(self.engine),
                "observations": [o.to_dict() for o in self.observations], "created": self.created,
                "probe_seconds": self.probe_seconds, "served_model": self.served_model,
                "residual_rms_pct": self.residual_rms_pct, "notes": list(self.notes)}


def _design(obs: list[Observation]) -> tuple[np.ndarray, np.ndarray]:
    """Rows [request overhead, c0, c1, c2, c3, c4, c5] and targets ("prefill": a TTFT, overhead included; "step":
    one engine step timed between two groups of first tokens; "decode": a median gap between tokens)."""
    a = np.array([[1.0 if o.kind == "prefill" else 0.0, 1.0, o.prefill_tokens, o.prefill_keys, o.decode_seqs,
                   o.decode_context_tokens, o.prefill_seqs] for o in obs])
    return a, np.array([o.measured_s for o in obs])


def fit_step_model(observations: list[Observation]) -> tuple[LinearStepModel, tuple]:
    """Non-negative relative least squares of the observations; returns the model and the observations with their
    predictions. ValueError when there are too few of either kind to fit."""
    obs = [o for o in observations if math.isfinite(o.measured_s) and o.measured_s > 0]
    kinds = {o.kind for o in obs}
    if len(obs) < 6 or not {"prefill", "decode"} <= kinds:
        raise ValueError("The probe needs at least six timed steps, prefills and decodes both, to fit a step model.")
    a, b = _design(obs)
    scale = 1.0 / b
    # Columns scaled to comparable size so nnls's tolerance treats them alike.
    norms = np.maximum(np.abs(a * scale[:, None]).max(axis=0), 1e-30)
    x, _ = nnls(a * scale[:, None] / norms, b * scale)
    x = x / norms
    model = LinearStepModel(float(x[1]), float(x[2]), float(x[3]), float(x[4]), float(x[5]),
                            request_overhead_s=float(x[0]), c5_s_per_prefill_seq=float(x[6]),
                            source="fitted from the profiling probe")
    fitted = tuple(Observation(o.kind, o.prefill_tokens, o.prefill_keys, o.decode_seqs, o.decode_context_tokens,
                               o.measured_s, float(a[i] @ x), o.prefill_seqs) for i, o in enumerate(obs))
    return model, fitted


GROUP_GAP_S = 0.015  # first tokens streamed within this of each other came from one engine step


def observations_from_records(records, concurrency: int) -> list[Observation]:
    """Timed steps from one probe level's request records (core.serve.load_test.RequestRecord)."""
    ok = [r for r in records if r.ok and r.ttft_s is not None and r.prompt_tokens]
    out: list[Observation] = []
    if concurrency == 1:
        for r in ok:
            p = int(r.prompt_tokens)
            out.append(Observation("prefill", p, float(chunk_keys(p, 0)), 0, 0.0, float(r.ttft_s), prefill_seqs=1))
            gaps = np.asarray(r.itl_s, dtype=float)
            for part in np.array_split(np.arange(len(gaps)), 3):
                if len(part):
                    out.append(Observation("decode", 0, 0.0, 1, float(p + part.mean()), float(np.median(gaps[part]))))
        return out
    if not ok:
        return out
    # Sent together, they reach the engine a little apart: the first group of first tokens is one prefill step
    # (a TTFT), each later group the step that prefilled it beside the earlier groups' decodes.
    ok.sort(key=lambda r: r.start_s + r.ttft_s)
    groups: list[list] = [[ok[0]]]
    for r in ok[1:]:
        prev = groups[-1][-1]
        if r.start_s + r.ttft_s - (prev.start_s + prev.ttft_s) <= GROUP_GAP_S:
            groups[-1].append(r)
        else:
            groups.append([r])
    first = groups[0]
    tokens = sum(int(r.prompt_tokens) for r in first)
    out.append(Observation("prefill", tokens, float(sum(chunk_keys(int(r.prompt_tokens), 0) for r in first)), 0, 0.0,
                           float(np.mean([r.ttft_s for r in first])), prefill_seqs=len(first)))
    ends = [float(np.mean([r.start_s + r.ttft_s for r in g])) for g in groups]
    for j in range(1, len(groups)):
        earlier = [r for g in groups[:j] for r in g]
        g = groups[j]
        out.append(Observation("step", sum(int(r.prompt_tokens) for r in g),
                               float(sum(chunk_keys(int(r.prompt_tokens), 0) for r in g)), len(earlier),
                               float(sum(int(r.prompt_tokens) + j for r in earlier)), ends[j] - ends[j - 1],
                               prefill_seqs=len(g)))
    # Then every request decodes together until the first group finishes: the last group's gaps in between.
    last = groups[-1]
    span = slice(1, max(1, len(last[0].itl_s) - len(groups)))
    values = np.array([g for r in last for g in r.itl_s[span]])
    if len(values):
        p = float(np.mean([r.prompt_tokens for r in ok]))
        out.append(Observation("decode", 0, 0.0, len(ok), len(ok) * (p + len(last[0].itl_s) / 2),
                               float(np.median(values))))
    return out


def engine_settings(endpoint: Endpoint, max_model_len: int | None) -> tuple[dict, list[str]]:
    """The engine's settings: block size and KV blocks from vLLM's /metrics ``cache_config_info``, the context from
    /v1/models; the scheduler limits are vLLM's defaults for the platform (CPU when the blocks are 128 tokens,
    vLLM's CPU default), since vLLM does not expose them."""
    notes = []
    counters = try_read_counters(endpoint)
    if counters is None or not counters.num_blocks or not counters.block_size_tokens:
        raise EndpointError(f"'{endpoint.name}' does not report its KV cache (vLLM's /metrics cache_config_info): "
                            "the simulator needs the pool's blocks. Simulate a catalog GPU instead (--gpu).")
    defaults = VLLM_CPU_DEFAULTS if counters.block_size_tokens == 128 else VLLM_GPU_DEFAULTS
    notes.append(f"max_num_seqs {defaults['max_num_seqs']} and max_num_batched_tokens "
                 f"{defaults['max_num_batched_tokens']}: vLLM's defaults ({'CPU' if defaults is VLLM_CPU_DEFAULTS else 'GPU'}),"
                 " not reported by the server; override them if the server was started with others.")
    return {"num_blocks": int(counters.num_blocks), "block_size_tokens": int(counters.block_size_tokens),
            "max_num_seqs": defaults["max_num_seqs"], "max_num_batched_tokens": defaults["max_num_batched_tokens"],
            "max_model_len": max_model_len}, notes


def run_probe(endpoint: Endpoint, *, on_level=None, served_model=None, seed: int | None = None) -> Profile:
    """Probe ``endpoint`` (≤ 24 requests) and fit its profile. EndpointError when it is unreachable or fails. Each
    probe draws fresh prompts (``seed`` None): a repeated probe's prompts would come from vLLM's prefix cache and
    time nothing."""
    started = time.perf_counter()
    seed = new_seed() if seed is None else int(seed)
    caps = probe_capabilities(endpoint)
    engine, notes = engine_settings(endpoint, caps.max_model_len)
    tokenizer = tokenizer_for(endpoint, caps.is_vllm)
    context = caps.max_model_len or 2048
    prompts = [p for p in PROBE_PROMPTS if p + PROBE_SINGLE_OUTPUT <= context] or [max(8, context // 4)]
    observations: list[Observation] = []
    plan = [(1, 2, p, PROBE_SINGLE_OUTPUT) for p in prompts]
    plan += [(k, k, PROBE_BATCH_PROMPT, PROBE_BATCH_OUTPUT) for k in PROBE_BATCHES]
    for level, (concurrency, n, p, o) in enumerate(plan):
        run = run_load_test_detailed(endpoint, [concurrency], n, p, o, seed=(seed + level) % 2**63,
                                     capabilities=caps, tokenizer=tokenizer)
        failed = [r for r in run.records if not r.ok]
        if failed or not run.records:
            raise EndpointError(f"The profiling probe failed: {failed[0].error if failed else 'no answer'}. "
                                "No profile was written.")
        observations += observations_from_records(run.records, concurrency)
        if on_level is not None:
            on_level(level + 1, len(plan))
    model, fitted = fit_step_model(observations)
    # Requests sent together reach the engine one after another (the API server handles them in turn): the probe's
    # groups show the first step starting with one or two of them. 1 ms in turn reproduces that order.
    model = replace(model, frontend_serial_s=min(FRONTEND_SERIAL_S, model.request_overhead_s))
    return Profile(endpoint.model, endpoint.base_url, model, engine, fitted,
                   dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), time.perf_counter() - started,
                   served_model, tuple(notes) + (f"Probe seed {seed}.",))


def save_profile(profile: Profile, path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(profile.to_dict(), indent=1))
    return path


def profile_from_dict(d) -> Profile:
    """A Profile from its to_dict(); SimulationInputError with a plain sentence for anything malformed."""
    if not isinstance(d, dict) or d.get("version") != PROFILE_VERSION:
        raise SimulationInputError(f"Not an LLM Lab endpoint profile (version {PROFILE_VERSION}).")
    try:
        model = step_model_from_dict(d["step_model"])
        engine = dict(d["engine"])
        EngineConfig(**{k: v for k, v in engine.items() if k in EngineConfig.__dataclass_fields__})
        observations = tuple(Observation(**{k: o[k] for k in Observation.__dataclass_fields__ if k in o})
                             for o in d.get("observations", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise SimulationInputError(f"The profile is malformed: {exc}") from None
    return Profile(str(d.get("model", "")), str(d.get("base_url", "")), model, engine, observations,
                   str(d.get("created", "")), float(d.get("probe_seconds", 0.0)), d.get("served_model"),
                   tuple(d.get("notes", ())))


def load_profile(path) -> Profile:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SimulationInputError(f"Cannot read the profile {path}: {exc.strerror or exc}.") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise SimulationInputError(f"{path} is not JSON: not an endpoint profile.") from None
    return profile_from_dict(data)
