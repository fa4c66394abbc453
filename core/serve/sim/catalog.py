"""The simulated engine of a model on a catalog GPU: the planner's per-step roofline (core.plan.serving_step) and its KV
pool (core.plan.serving.serving_plan: what is left of gpu_memory_utilization × memory after weights, activations
and runtime, in blocks of 16 tokens, which is vLLM's own accounting), with the plan's scheduler limits."""
from __future__ import annotations

from core.plan.serving import KV_BLOCK_TOKENS, serving_plan
from core.serve.sim.scheduler import EngineConfig, SimulationInputError
from core.serve.sim.step_model import RooflineStepModel, roofline_step_model

ENGINE_KEYS = ("weight_format", "kv_dtype", "tensor_parallel", "bandwidth_efficiency", "mfu", "step_overhead_s")


def catalog_engine(model, gpu, *, block_size_tokens: int = KV_BLOCK_TOKENS, max_model_len: int | None = None,
                   **plan_kwargs) -> tuple[RooflineStepModel, EngineConfig]:
    """(step model, engine settings) of one replica; ``plan_kwargs`` as core.plan.serving.serving_plan takes them
    (prompt and output tokens only size the plan's notes, not the pool). SimulationInputError when no request fits."""
    plan = serving_plan(model, gpu, **plan_kwargs)
    step_model = roofline_step_model(model, gpu, **{k: plan_kwargs[k] for k in ENGINE_KEYS if k in plan_kwargs})
    blocks = int(plan.kv_capacity_tokens // block_size_tokens)
    if blocks < 1:
        raise SimulationInputError("The weights and reserves leave no KV pool on this GPU: no request fits. Add GPUs "
                                   "(tensor parallel), a smaller weight format or a GPU with more memory.")
    config = EngineConfig(num_blocks=blocks, block_size_tokens=block_size_tokens,
                          max_num_seqs=int(plan_kwargs.get("max_num_seqs", 256)),
                          max_num_batched_tokens=int(plan_kwargs.get("max_batched_tokens", 2048)),
                          max_model_len=max_model_len)
    return step_model, config
