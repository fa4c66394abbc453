"""Optimized variants of one causal LM measured with one instrument, so that fp32, int8, NF4, pruned and distilled
line up on the same columns.

For each variant: the bytes of every tensor it holds (core.run.quantization.model_weight_bytes: bitsandbytes' scales
included), its distinct parameters, layers and measured sparsity; perplexity on the bundled reference text, mean KL
to the dense model and top-1 agreement (the Quantization page's metrics, llama.cpp ``perplexity --kl-divergence``);
tokens/s and the resident-memory peak of one greedy generation (core.common.process_memory.PeakMemoryMeter; above the
memory in use when it began); the greedy answer; and, when asked, a score on a bundled Evaluate task.

Zeros left by unstructured or 2:4 pruning are stored as dense numbers: the weights and the speed do not change in
PyTorch's dense kernels (on this CPU or a GPU); removed layers shrink both.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from core.run import pruning
from core.run.prompts import chat_ids
from core.run.pruning import calibration_ids, pruned_copy

DEFAULT_PROMPT = "Explain in two sentences why a lighthouse is useful to ships."
DEFAULT_MAX_NEW_TOKENS = 32
REFERENCE_TOKENS = 192
TASK = "review-sentiment"
TASK_TECHNIQUE = "few-shot"
LINEUP_KINDS = ("fp32", "int8", "nf4", "pruned", "distilled")


class VariantError(ValueError):
    """Bad variant input; the message is user-facing."""


def reference_ids(tokenizer, tokens: int = REFERENCE_TOKENS):
    from core.run.quantization import load_reference_text

    return tokenizer(load_reference_text(), return_tensors="pt").input_ids[:, :tokens]


def reference_logits(loaded, ids) -> np.ndarray:
    import torch

    from core.common.scheduler import GENERATION_QUEUE

    with GENERATION_QUEUE.admit("optimize"), torch.inference_mode():
        return loaded.model(input_ids=ids.to(loaded.device)).logits[0].float().cpu().numpy()


def task_score(loaded, task: str = TASK, technique: str = TASK_TECHNIQUE, limit: int | None = None) -> float:
    """The score (accuracy % or ROUGE-L F1) of ``loaded`` on a bundled Evaluate task with one prompt technique."""
    from core.evaluate import runner

    run = runner.run_evaluation(task, [runner.Setup(loaded.name, technique, runner.local_generator(loaded))], limit)
    return float(runner.summary(run)[0][runner.score_key(task)])


def measure_variant(label: str, loaded, *, dense_logits, ids, kind: str = "", prompt: str = DEFAULT_PROMPT,
                    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, task_limit: int | None = None,
                    parameters: int | None = None) -> dict:
    """One row: see the module docstring. ``task_limit`` = None skips the task score; 0 runs every item.
    ``parameters``: the count to report for a quantized model (bitsandbytes packs two 4-bit weights per byte, so its
    tensors' element count is not the model's parameter count); its sparsity is not reported (packed codes)."""
    from core.run.quantization import quiet_libraries

    with quiet_libraries():
        return _measure(label, loaded, dense_logits=dense_logits, ids=ids, kind=kind, prompt=prompt,
                        max_new_tokens=max_new_tokens, task_limit=task_limit, parameters=parameters)


def _measure(label, loaded, *, dense_logits, ids, kind, prompt, max_new_tokens, task_limit, parameters) -> dict:
    import torch

    from core.common.process_memory import PeakMemoryMeter, process_rss_bytes
    from core.run.quantization import free_released_memory, model_weight_bytes
    from core.common.scheduler import GENERATION_QUEUE

    if not isinstance(prompt, str) or not prompt.strip():
        raise VariantError("The prompt is empty: type a prompt for the variants to answer.")
    logits = reference_logits(loaded, ids)
    quantized = bool(loaded.quantization)
    row = {"variant": label, "kind": kind, "weight_bytes": model_weight_bytes(loaded.model),
           "parameters": parameters if parameters is not None else loaded.num_parameters,
           "layers": pruning.layer_count(loaded.model),
           "sparsity_pct": None if quantized else 100.0 * pruning.measured_sparsity(loaded.model),
           **pruning.quality(dense_logits, logits, ids[0]), "notes": "; ".join(loaded.notes)}
    row["top1_agreement"] *= 100.0
    tokenizer = loaded.tokenizer
    prompt_ids = torch.tensor([chat_ids(tokenizer, prompt)], dtype=torch.long, device=loaded.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    free_released_memory()
    with GENERATION_QUEUE.admit("optimize"):
        before = process_rss_bytes()
        with PeakMemoryMeter(loaded.device) as meter, torch.inference_mode():
            started = time.perf_counter()
            out = loaded.model.generate(input_ids=prompt_ids, attention_mask=torch.ones_like(prompt_ids),
                                        max_new_tokens=int(max_new_tokens), do_sample=False, pad_token_id=pad)
            seconds = time.perf_counter() - started
    new = out[0, prompt_ids.shape[1]:].tolist()
    row.update(generated_tokens=len(new), tokens_per_s=len(new) / seconds if seconds > 0 and new else float("nan"),
               generation_peak_bytes=(meter.peak_bytes if loaded.device.type == "cuda"
                                      else max(0, meter.peak_bytes - before)),
               peak_method=meter.method, answer=tokenizer.decode(new, skip_special_tokens=True).strip())
    if task_limit is not None:
        row["task_score"] = task_score(loaded, limit=task_limit or None)
    return row


def lineup(base, kinds=LINEUP_KINDS, *, pruned: dict | None = None, distilled_model=None,
           prompt: str = DEFAULT_PROMPT, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, task_limit: int | None = 8,
           progress: Callable[[float, str], None] | None = None) -> list[dict]:
    """fp32, int8, NF4 (bitsandbytes), a pruned copy and a distilled student of ``base`` (the fp32 LoadedModel),
    measured in turn with ``measure_variant``. ``pruned``: keyword arguments of core.run.pruning.pruned_copy
    (default 4 layers removed); ``distilled_model``: the student of a core.optimize.distillation run (the row is
    skipped without one). A variant that can't run here gets a row with its ``reason``."""
    from core.run import models
    from core.run.quantization import detach_from_checkpoint, free_released_memory, quiet_libraries

    report = progress or (lambda fraction, message: None)
    kinds = [k for k in LINEUP_KINDS if k in set(kinds)]
    if not kinds:
        raise VariantError(f"Choose at least one of {', '.join(LINEUP_KINDS)}.")
    ids = reference_ids(base.tokenizer)
    dense = reference_logits(base, ids)
    rows = []
    for index, kind in enumerate(kinds):
        report(index / len(kinds), f"{kind}: preparing…")
        loaded, owned = None, False
        try:
            if kind == "fp32":
                loaded, label = base, "fp32 (dense)"
            elif kind in ("int8", "nf4"):
                with quiet_libraries():
                    loaded = models.load_model(base.name, dtype="fp32", device=base.device, quantization=kind)
                owned = True
                if loaded.device.type == "cpu":
                    detach_from_checkpoint(loaded.model)  # else the fp32 checkpoint's pages stay resident
                free_released_memory()
                label = f"{kind} (bitsandbytes)"
            elif kind == "pruned":
                spec = {"method": "remove-layers", "layers": 4, **(pruned or {})}
                loaded = pruned_copy(base, spec.pop("method"), calibration=calibration_ids(base.tokenizer), **spec)
                owned = True
                label = f"pruned: {loaded.name}"
            else:
                if distilled_model is None:
                    continue
                loaded, label = models.as_loaded(base, distilled_model, "distilled student"), "distilled student"
            report((index + 0.3) / len(kinds), f"{label}: measuring…")
            rows.append(measure_variant(label, loaded, dense_logits=dense, ids=ids, kind=kind, prompt=prompt,
                                        max_new_tokens=max_new_tokens, task_limit=task_limit,
                                        parameters=base.num_parameters if kind in ("int8", "nf4") else None))
        except VariantError:
            raise
        except (models.ModelLoadError, RuntimeError, ValueError, ImportError, MemoryError, OSError) as exc:
            rows.append({"variant": kind, "kind": kind, "reason": str(exc).splitlines()[0] if str(exc) else
                         type(exc).__name__})
        finally:
            if owned and loaded is not None:
                models.release_model(loaded)  # a copy's own LoadedModel: the base keeps its model
            loaded = None
            free_released_memory()
    report(1.0, "Done.")
    return rows


PRUNING_METHODS = ("magnitude", "wanda", "2:4-magnitude", "2:4-wanda", "remove-layers", "remove-heads")
DEFAULT_SPARSITIES = (0.1, 0.3, 0.5, 0.7)


PRUNE_PACE = "optimize.pruned-variant"
"""``core.common.pace`` kind: seconds per variant of a pruning study measured here."""
# Measured 2026-12-07 (issue 32's report): the default study, 10 variants of SmolLM2, took 58 s on a 2-core CPU.
PRUNE_PRIOR_S, PRUNE_PRIOR_SOURCE = 5.8, "the default 10-variant study took 58 s on a 2-core CPU"


def study_estimate(methods, sparsities) -> dict:
    """How long ``pruning_study`` will take for these choices (``core.common.pace.estimate``: the pace measured here,
    else the prior above), with ``variants``, the count ``study_plan`` gives."""
    from core.common import pace

    planned = len(study_plan(methods, sparsities))
    return {**pace.estimate(PRUNE_PACE, planned, "variant", PRUNE_PRIOR_S, PRUNE_PRIOR_SOURCE), "variants": planned}


def study_plan(methods, sparsities) -> list[tuple[str, float | None]]:
    """The variants ``pruning_study`` measures, in order, as ``(method, sparsity)``: the dense model first, then
    each unstructured method at each sparsity, the 2:4 methods at 50 % and the structured removals once each (so a
    page can say before the run how many there are). Unknown methods are left out."""
    chosen = [m for m in PRUNING_METHODS if m in set(methods)]
    levels = sorted({round(float(s), 4) for s in sparsities})
    plan: list[tuple[str, float | None]] = [("dense", None)]
    for method in chosen:
        if method in ("magnitude", "wanda"):
            plan += [(method, s) for s in levels]
        elif method.startswith("2:4"):
            plan.append((method, 0.5))
        else:
            plan.append((method, None))
    return plan


def pruning_study(base, methods=("magnitude", "wanda"), sparsities=DEFAULT_SPARSITIES, layers: int = 4, *,
                  prompt: str = DEFAULT_PROMPT, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                  on_row: Callable[[dict, int, int], None] | None = None, stop=None) -> list[dict]:
    """The dense model, then each unstructured method at each sparsity, the 2:4 methods (50 %), the removal of
    ``layers`` layers and of one key/value head group per layer, each measured with ``measure_variant`` on a fresh
    pruned copy (Wanda's input norms, the Block Influence and the head importance come from the reference text's
    tokens). ``on_row(row, done, total)`` after each; a set ``stop`` ends the study with the rows so far."""
    from core.run.quantization import free_released_memory

    chosen = [m for m in PRUNING_METHODS if m in set(methods)]
    unknown = sorted(set(methods) - set(PRUNING_METHODS))
    if unknown or not chosen:
        raise VariantError(f"Choose pruning methods among {', '.join(PRUNING_METHODS)}.")
    try:
        levels = sorted({round(float(s), 4) for s in sparsities})
    except (TypeError, ValueError):
        raise VariantError("Sparsities must be numbers between 0.05 and 0.95.") from None
    if any(not 0.05 <= s <= 0.95 for s in levels) or (not levels and {"magnitude", "wanda"} & set(chosen)):
        raise VariantError("Sparsities must be between 5 % and 95 %.")
    total_layers = pruning.layer_count(base.model)
    if "remove-layers" in chosen and not 1 <= int(layers) < total_layers:
        raise VariantError(f"Remove between 1 and {total_layers - 1} layers.")
    ids, calibration = reference_ids(base.tokenizer), calibration_ids(base.tokenizer)
    dense = reference_logits(base, ids)
    plan = study_plan(chosen, levels)
    rows = []
    for method, sparsity in plan:
        if stop is not None and stop.is_set():
            break
        if method == "dense":
            loaded, label = base, "dense (fp32)"
        else:
            loaded = pruned_copy(base, method, sparsity=sparsity or 0.5, layers=int(layers),
                                 calibration=calibration)
            label = loaded.name
        row = measure_variant(label, loaded, dense_logits=dense, ids=ids, kind="pruned" if method != "dense" else
                              "dense", prompt=prompt, max_new_tokens=max_new_tokens)
        row.update(method=method, target_sparsity_pct=None if sparsity is None else 100.0 * sparsity)
        rows.append(row)
        loaded = None
        free_released_memory()
        if on_row is not None:
            on_row(row, len(rows), len(plan))
    return rows


LINEUP_COLUMNS = {
    "variant": "Variant", "weight_mb": "Weights (MB)", "parameters_m": "Parameters (M)", "layers": "Layers",
    "sparsity_pct": "Zeros (%)", "tokens_per_s": "Speed (tok/s)", "generation_peak_mb": "Generation peak (MB)",
    "perplexity": "Perplexity", "kl_mean_nats": "KL to the dense model (nats)",
    "top1_agreement": "Top-1 agreement (%)",
    "task_score": "Review sentiment, few-shot (% correct)",
}


def lineup_table(rows: list[dict]):
    """The rows with human units (MB = 1e6 bytes, millions of parameters), columns named for display."""
    import pandas as pd

    out = []
    for r in rows:
        if "reason" in r:
            continue
        out.append({"variant": r["variant"], "weight_mb": r["weight_bytes"] / 1e6,
                    "parameters_m": r["parameters"] / 1e6, "layers": r["layers"], "sparsity_pct": r["sparsity_pct"],
                    "tokens_per_s": r["tokens_per_s"], "generation_peak_mb": r["generation_peak_bytes"] / 1e6,
                    "perplexity": r["perplexity"], "kl_mean_nats": r["kl_mean_nats"],
                    "top1_agreement": r["top1_agreement"], "task_score": r.get("task_score")})
    frame = pd.DataFrame(out, columns=list(LINEUP_COLUMNS))
    return frame.rename(columns=LINEUP_COLUMNS)


def rows_csv(rows: list[dict]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False)


def _finite(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def rows_json(rows: list[dict], **extra) -> str:
    """The rows (and any ``extra`` fields) as JSON, NaN and infinities as null."""
    import json

    return json.dumps(_finite({"rows": rows, **extra}), indent=2, default=str)
