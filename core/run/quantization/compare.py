"""The comparison itself (``compare_variants``): each variant loaded in turn, measured and released, one row each,
and the tables for display and download."""
from __future__ import annotations

import contextlib
import functools
import logging
import time
import warnings
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from core.common import checks
from core.common.process_memory import PeakMemoryMeter, free_released_memory
from core.common.scheduler import GENERATION_QUEUE
from core.run.quantization.quality import (first_divergence, kl_divergence, kl_percentile, perplexity_from_logits,
                                           top1_agreement)
from core.run.quantization.variants import (COMPUTE_DTYPES, DEFAULT_MAX_NEW_TOKENS, DEFAULT_PROMPT,
                                            DEFAULT_REFERENCE_TOKENS, DEFAULT_VARIANTS, MAX_NEW_TOKENS_LIMIT,
                                            MAX_PROMPT_CHARS, MAX_REFERENCE_TOKENS_LIMIT, MIN_REFERENCE_TOKENS,
                                            UNQUANTIZED_DTYPES, VARIANT_SPECS, ProgressCallback, QuantizationInputError,
                                            VariantSpec, load_reference_text, normalize_variants)
from core.run.quantization.weights import (detach_from_checkpoint, device_memory_in_use, model_weight_bytes,
                                           planner_model, predicted_weight_bytes)
from core.run.prompts import render_prompt
from core.run.tokens import token_texts


_check_int = functools.partial(checks.check_int, error=QuantizationInputError)
_check_choice = functools.partial(checks.check_choice, error=QuantizationInputError)


# ---------------------------------------------------------------------------------------------------------------------
# The comparison

@dataclass(frozen=True)
class VariantResult:
    """One variant's record in ``compare_quantization`` (one row of its DataFrame; ``to_dict()`` gives that row's
    keys, which are ``RESULT_COLUMNS``). Bytes, seconds, nats and percent (0–100) as the names say; None where a
    value does not apply or the variant could not run (``available=False`` with the ``reason``)."""
    variant: str
    label: str
    available: bool = False
    reason: str = ""
    baseline: str | None = None  # variant the quality metrics compare against
    device: str | None = None
    dtype: str | None = None  # dtype of the layers left unquantized (or of all layers)
    quantization: str | None = None  # "int8" / "nf4" / "fp4" (bitsandbytes) or None
    double_quant: bool | None = None
    compute_dtype: str | None = None
    load_seconds: float | None = None
    weight_bytes: int | None = None  # measured: parameters, buffers and quantization constants
    footprint_bytes: int | None = None  # transformers' get_memory_footprint()
    cuda_allocated_bytes: int | None = None
    predicted_weight_bytes: float | None = None  # core.plan.memory's prediction
    prediction_error_pct: float | None = None
    peak_bytes: int | None = None  # peak during greedy generation minus memory in use before loading
    peak_process_bytes: int | None = None
    peak_method: str | None = None
    tokens_per_s: float | None = None
    generated_tokens: int | None = None
    generation_seconds: float | None = None
    reference_tokens: int | None = None
    perplexity: float | None = None
    delta_ppl: float | None = None
    delta_ppl_pct: float | None = None
    kl_mean: float | None = None  # nats
    kl_p99: float | None = None  # nats
    kl_max: float | None = None  # nats
    top1_agreement: float | None = None  # percent
    greedy_text: str | None = None
    sampled_text: str | None = None
    greedy_first_divergence: int | None = None
    sampled_first_divergence: int | None = None
    greedy_ids: list | None = None
    greedy_tokens: list | None = None
    sampled_ids: list | None = None
    sampled_tokens: list | None = None
    kl_per_position: list | None = None  # KL per reference position, nats
    notes: str | None = None

    def to_dict(self) -> dict:
        return {column: getattr(self, column) for column in RESULT_COLUMNS}


RESULT_COLUMNS = [f.name for f in fields(VariantResult)]


def _empty_row(spec: VariantSpec) -> dict:
    return VariantResult(variant=spec.name, label=spec.label, quantization=spec.quantization).to_dict()


def _prompt_inputs(tokenizer, prompt: str, use_chat_template: bool) -> dict:
    """``generate()``'s inputs for the prompt, wrapped in the tokenizer's chat template when it has one and it is asked
    for (core.run.prompts.render_prompt, the Generate page's rendering)."""
    import torch

    ids = torch.tensor([render_prompt(tokenizer, prompt, use_chat_template).input_ids], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@contextlib.contextmanager
def quiet_libraries():
    """Silence per-call library chatter while variants run: bitsandbytes logs "MatMul8bitLt: inputs will be cast…"
    on every int8 matmul and a hint about an optional CPU kernels package; transformers warns about generation flags."""
    names = ("bitsandbytes", "transformers")
    previous = {n: logging.getLogger(n).level for n in names}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for n in names:
                logging.getLogger(n).setLevel(logging.ERROR)
            yield
    finally:
        for n, level in previous.items():
            logging.getLogger(n).setLevel(level)


def _generate(loaded, inputs, max_new_tokens: int, sample: bool, seed: int, temperature: float, top_k: int):
    import torch
    from transformers import GenerationConfig

    tokenizer = loaded.tokenizer
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=sample,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **({"temperature": temperature, "top_k": top_k, "top_p": 1.0} if sample else {}),
    )
    device_inputs = {k: v.to(loaded.device) for k, v in inputs.items()}
    # Its turn at the model in the same first-come-first-served line as the Generate page (core.common.scheduler): the
    # seed above must not be re-seeded by another session's run, and timings are not shared with another run.
    with GENERATION_QUEUE.admit("quantization"):
        if sample:
            torch.manual_seed(seed)
            if loaded.device.type == "cuda":
                torch.cuda.manual_seed_all(seed)
        started = time.perf_counter()
        with torch.inference_mode():
            output = loaded.model.generate(**device_inputs, generation_config=config)
        if loaded.device.type == "cuda":
            torch.cuda.synchronize(loaded.device)
        seconds = time.perf_counter() - started
    new_ids = output[0, device_inputs["input_ids"].shape[1]:].tolist()
    return new_ids, seconds


def _reference_logits(loaded, reference_ids) -> np.ndarray:
    import torch

    with torch.inference_mode():
        logits = loaded.model(input_ids=reference_ids.to(loaded.device)).logits[0]
    return logits.float().cpu().numpy()


def compare_variants(
    name: str | None = None,
    variants=DEFAULT_VARIANTS,
    prompt: str = DEFAULT_PROMPT,
    reference_text: str | None = None,
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_reference_tokens: int = DEFAULT_REFERENCE_TOKENS,
    double_quant: bool = False,
    compute_dtype: str = "fp32",
    unquantized_dtype: str = "auto",
    device: str = "auto",
    seed: int = 0,
    temperature: float = 0.8,
    top_k: int = 50,
    use_chat_template: bool = True,
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """Load each variant of ``name`` in turn (None → the bundled SmolLM2-135M-Instruct), measure it, release it.

    Returns one row per requested variant (canonical order fp32, fp16, bf16, int8, nf4, fp4), columns
    ``RESULT_COLUMNS``: ``weight_bytes`` (measured, incl. quantization constants), ``predicted_weight_bytes`` (memory
    planner) and ``prediction_error_pct``, ``footprint_bytes`` (get_memory_footprint), ``load_seconds``, ``peak_bytes``
    (peak during greedy generation minus memory in use before loading), ``tokens_per_s``, ``perplexity`` on the first
    ``max_reference_tokens`` tokens of ``reference_text`` (None → the bundled text), ``delta_ppl`` / ``kl_mean`` /
    ``kl_p99`` (nats) / ``top1_agreement`` (%, 0–100) versus the baseline, greedy and same-seed sampled outputs with the
    first divergence from the baseline's. The baseline is fp32 when requested, else the first variant that loads.
    A variant this machine cannot run has ``available=False`` and the reason; the others still run.

    4-bit options: ``double_quant`` (quantize the absmax scales too), ``compute_dtype`` (dtype of the 4-bit matmuls).
    ``unquantized_dtype`` is the dtype of the layers bitsandbytes keeps (embeddings, norms, lm_head); "auto" = fp32 on
    CPU, bf16/fp16 on CUDA. ``progress(fraction, message)`` is called as the comparison advances.
    Raises QuantizationInputError on bad input and core.run.models.ModelLoadError when the model itself cannot be found.
    """
    from core.run import models

    report = progress or (lambda fraction, message: None)
    chosen = normalize_variants(variants)
    if not isinstance(prompt, str) or not prompt.strip():
        raise QuantizationInputError("The prompt is empty: type a prompt for the models to continue.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise QuantizationInputError(f"The prompt is {len(prompt):,} characters long; keep it under {MAX_PROMPT_CHARS:,}.")
    max_new_tokens = _check_int(max_new_tokens, "Max new tokens", 1, MAX_NEW_TOKENS_LIMIT)
    max_reference_tokens = _check_int(max_reference_tokens, "Reference tokens", MIN_REFERENCE_TOKENS,
                                      MAX_REFERENCE_TOKENS_LIMIT)
    compute_dtype = _check_choice(compute_dtype, "Compute dtype", COMPUTE_DTYPES)
    unquantized_dtype = _check_choice(unquantized_dtype, "Unquantized layers' dtype", UNQUANTIZED_DTYPES)
    seed = _check_int(seed, "Seed", 0, 2**31 - 1)
    if reference_text is None:
        reference_text = load_reference_text()
    if not isinstance(reference_text, str) or not reference_text.strip():
        raise QuantizationInputError("The reference text is empty: perplexity and KL need a text to score.")

    target_device = models.select_device(device)
    resolved_name = models.canonical_name(name)
    if resolved_name == models.BUNDLED_ENCODER:
        raise QuantizationInputError(
            f"{models.BUNDLED_ENCODER} is an encoder: it does not generate text or predict next tokens. Compare a "
            f"decoder such as the bundled {models.BUNDLED_DECODER}.")
    report(0.0, f"Reading the tokenizer of {resolved_name}…")
    tokenizer = models.load_tokenizer(resolved_name)  # ModelLoadError here: the model itself is unavailable
    reference_ids = tokenizer(reference_text, return_tensors="pt").input_ids[:, :max_reference_tokens]
    if reference_ids.shape[1] < MIN_REFERENCE_TOKENS:
        raise QuantizationInputError(
            f"The reference text has only {reference_ids.shape[1]} tokens; perplexity needs at least "
            f"{MIN_REFERENCE_TOKENS}.")
    prompt_inputs = _prompt_inputs(tokenizer, prompt, use_chat_template)
    del tokenizer

    keep_dtype = (models.SHORT_DTYPE[models.resolve_dtype("auto", target_device)]
                  if unquantized_dtype == "auto" else unquantized_dtype)
    baseline_name: str | None = None
    baseline_logits: np.ndarray | None = None
    baseline_ppl: float | None = None
    baseline_greedy: list[int] | None = None
    baseline_sampled: list[int] | None = None
    rows: list[dict] = []
    steps_per_variant = 4
    total_steps = steps_per_variant * len(chosen)

    def step(index: int, stage: int, message: str) -> None:
        report(min(1.0, (index * steps_per_variant + stage) / total_steps), message)

    for index, variant in enumerate(chosen):
        spec = VARIANT_SPECS[variant]
        row = _empty_row(spec)
        row.update(device=str(target_device), reference_tokens=int(reference_ids.shape[1]),
                   double_quant=bool(double_quant) if spec.quantization in ("nf4", "fp4") else None,
                   compute_dtype=compute_dtype if spec.quantization in ("nf4", "fp4") else None)
        dtype = spec.dtype or keep_dtype
        row["dtype"] = dtype
        loaded = None
        free_released_memory()
        memory_before = device_memory_in_use(target_device)
        try:
            step(index, 0, f"{spec.label}: loading…")
            with quiet_libraries():
                loaded = models.load_model(resolved_name, dtype=dtype, device=target_device,
                                           quantization=spec.quantization, double_quant=bool(double_quant),
                                           compute_dtype=compute_dtype if spec.quantization else None)
            if loaded.kind != "decoder":
                raise QuantizationInputError(
                    f"'{resolved_name}' is an {loaded.kind}; the comparison needs a decoder (causal language model) "
                    f"such as the bundled {models.BUNDLED_DECODER}.")
            row["load_seconds"] = float(loaded.load_seconds)
            if spec.quantization and target_device.type == "cpu":
                detach_from_checkpoint(loaded.model)  # else the fp32 checkpoint stays mapped and resident
                free_released_memory()
            row["notes"] = "; ".join(loaded.notes)
            row["weight_bytes"] = model_weight_bytes(loaded.model)
            row["footprint_bytes"] = int(loaded.model.get_memory_footprint())
            if target_device.type == "cuda":
                row["cuda_allocated_bytes"] = device_memory_in_use(target_device) - memory_before
            try:
                predicted = predicted_weight_bytes(planner_model(loaded), variant, double_quant=bool(double_quant),
                                                   unquantized_dtype=dtype)
                row["predicted_weight_bytes"] = predicted
                row["prediction_error_pct"] = 100.0 * (row["weight_bytes"] - predicted) / predicted
            except Exception as exc:  # noqa: BLE001 - an architecture the planner does not know: no prediction
                row["notes"] = "; ".join(filter(None, [row["notes"], f"no planner prediction: {exc}"]))

            step(index, 1, f"{spec.label}: scoring {reference_ids.shape[1]} reference tokens…")
            with quiet_libraries():
                logits = _reference_logits(loaded, reference_ids)
            row["perplexity"] = perplexity_from_logits(logits, reference_ids[0].numpy())
            if baseline_logits is None:
                baseline_name, baseline_logits, baseline_ppl = variant, logits, row["perplexity"]
                kl = np.zeros(logits.shape[0])
                row["top1_agreement"] = 100.0
            else:
                kl = kl_divergence(baseline_logits, logits)
                row["top1_agreement"] = 100.0 * top1_agreement(baseline_logits, logits)
            del logits
            row["baseline"] = baseline_name
            row["delta_ppl"] = row["perplexity"] - baseline_ppl
            row["delta_ppl_pct"] = 100.0 * row["delta_ppl"] / baseline_ppl
            row["kl_mean"] = float(np.mean(kl))
            row["kl_p99"] = kl_percentile(kl)
            row["kl_max"] = float(np.max(kl))
            row["kl_per_position"] = kl.astype(np.float32).tolist()

            step(index, 2, f"{spec.label}: greedy generation of up to {max_new_tokens} tokens…")
            free_released_memory()  # loading and scoring leave garbage behind: measure generation, not them
            with quiet_libraries():
                with PeakMemoryMeter(target_device) as meter:
                    greedy, seconds = _generate(loaded, prompt_inputs, max_new_tokens, False, seed, temperature,
                                                top_k)
            row["peak_process_bytes"] = meter.peak_bytes
            row["peak_bytes"] = max(0, meter.peak_bytes - memory_before)
            row["peak_method"] = meter.method
            row["generated_tokens"] = len(greedy)
            row["generation_seconds"] = seconds
            row["tokens_per_s"] = len(greedy) / seconds if seconds > 0 and greedy else float("nan")

            step(index, 3, f"{spec.label}: sampled generation (seed {seed})…")
            with quiet_libraries():
                sampled, _ = _generate(loaded, prompt_inputs, max_new_tokens, True, seed, temperature, top_k)

            tok = loaded.tokenizer
            row["greedy_ids"], row["sampled_ids"] = greedy, sampled
            row["greedy_tokens"], row["sampled_tokens"] = token_texts(tok, greedy), token_texts(tok, sampled)
            row["greedy_text"] = tok.decode(greedy, skip_special_tokens=True)
            row["sampled_text"] = tok.decode(sampled, skip_special_tokens=True)
            if baseline_greedy is None:
                baseline_greedy, baseline_sampled = greedy, sampled
            row["greedy_first_divergence"] = first_divergence(baseline_greedy, greedy)
            row["sampled_first_divergence"] = first_divergence(baseline_sampled, sampled)
            row["available"] = True
        except QuantizationInputError:
            raise
        except models.ModelLoadError as exc:
            row["reason"] = str(exc)
        except (MemoryError, RuntimeError, ValueError, TypeError, ImportError, OSError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if isinstance(exc, MemoryError) or "out of memory" in text.lower():
                text = f"out of memory on {target_device}: {text}"
            row["reason"] = f"{spec.label} failed on {target_device}: {text}"
        finally:
            if loaded is not None:
                models.release_model(loaded)
                loaded = None
            free_released_memory()
        if not row["available"]:
            for column in ("greedy_ids", "sampled_ids", "greedy_tokens", "sampled_tokens", "kl_per_position"):
                row[column] = None
        rows.append(VariantResult(**row).to_dict())
    del baseline_logits
    free_released_memory()
    report(1.0, "Done.")
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    for column in ("greedy_first_divergence", "sampled_first_divergence", "generated_tokens", "reference_tokens"):
        frame[column] = frame[column].astype("Int64")
    numeric = ["load_seconds", "weight_bytes", "footprint_bytes", "cuda_allocated_bytes", "predicted_weight_bytes",
               "prediction_error_pct", "peak_bytes", "peak_process_bytes", "tokens_per_s", "generation_seconds",
               "perplexity", "delta_ppl", "delta_ppl_pct", "kl_mean", "kl_p99", "kl_max", "top1_agreement"]
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


# ---------------------------------------------------------------------------------------------------------------------
# Tables for display and download

MEMORY_SPEED_COLUMNS: dict[str, str] = {
    "label": "Variant",
    "weight_mb": "Weights (MB)",
    "predicted_mb": "Predicted (MB)",
    "prediction_error_pct": "Error (%)",
    "footprint_mb": "HF footprint (MB)",
    "peak_mb": "Peak (MB)",
    "load_seconds": "Load (s)",
    "tokens_per_s": "Speed (tok/s)",
}
QUALITY_COLUMNS: dict[str, str] = {
    "label": "Variant",
    "perplexity": "Perplexity",
    "delta_ppl": "ΔPPL vs baseline",
    "delta_ppl_pct": "ΔPPL vs baseline (%)",
    "kl_mean": "KL mean (nats)",
    "kl_p99": "KL p99 (nats)",
    "top1_agreement": "Top-1 agreement (%)",
    "greedy_first_divergence": "Greedy diverges at",
}
DISPLAY_COLUMNS: dict[str, str] = {**MEMORY_SPEED_COLUMNS, **QUALITY_COLUMNS}

CSV_COLUMNS = [c for c in RESULT_COLUMNS if c not in ("greedy_ids", "sampled_ids", "greedy_tokens", "sampled_tokens",
                                                       "kl_per_position")]


def summary_table(results: pd.DataFrame, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """The results of available variants with human units (MB = 1e6 bytes), columns named for display.

    ``columns``: MEMORY_SPEED_COLUMNS, QUALITY_COLUMNS or (default) DISPLAY_COLUMNS, both together."""
    columns = columns or DISPLAY_COLUMNS
    frame = results[results["available"]].copy()
    frame["weight_mb"] = frame["weight_bytes"] / 1e6
    frame["predicted_mb"] = frame["predicted_weight_bytes"] / 1e6
    frame["footprint_mb"] = frame["footprint_bytes"] / 1e6
    frame["peak_mb"] = frame["peak_bytes"] / 1e6
    frame["greedy_first_divergence"] = [
        "baseline" if variant == base else ("identical" if pd.isna(index) else f"token {int(index)}")
        for variant, base, index in zip(frame["variant"], frame["baseline"], frame["greedy_first_divergence"])]
    return frame[list(columns)].rename(columns=columns).reset_index(drop=True)


def unavailable_variants(results: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, reason) of the variants that could not run."""
    frame = results[~results["available"]]
    return list(zip(frame["label"], frame["reason"]))


def results_csv(results: pd.DataFrame) -> str:
    """All measured columns (no per-token lists) as CSV text, bytes and seconds in base units."""
    return results[CSV_COLUMNS].to_csv(index=False)
