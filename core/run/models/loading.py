"""Loading a model by name (local folder, the bundled ones, or the Hugging Face hub) on the chosen device and dtype,
optionally quantized with bitsandbytes, into a ``LoadedModel``; its tokenizer; and releasing it. The load options
(device, dtype, kind, quantization config) are ``core.run.models.load_options``; random-weight models built from a
config, ``core.run.models.random_weights``."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.common import safe_json
from core.common.process_memory import free_released_memory
from core.common.user_text import code, escape_markdown
from core.plan import model_size
from core.run import model_policy
from core.run.model_policy import ModelPolicy
from core.run.models.bundled import (BUNDLED_DECODER, BUNDLED_ENCODER, ModelLoadError, ProgressCallback,
                                     bundled_encoder_dir, bundled_folders, canonical_name, ensure_bundled_decoder,
                                     with_bundled_hint)
from core.run.models.load_options import (QUANTIZATIONS, SHORT_DTYPE, auto_class, bnb_config,
                                          check_quantization_runs_here, detect_kind, dtype_notes, resolve_dtype,
                                          select_device)
from core.run.prompts import has_chat_template


@dataclass
class LoadedModel:
    """A ready-to-run model with its tokenizer and how it was loaded."""

    model: Any
    tokenizer: Any
    device: torch.device
    kind: str  # "decoder" | "encoder" | "encoder-decoder"
    name: str
    dtype: torch.dtype
    quantization: str | None = None
    random_weights: bool = False
    load_seconds: float = 0.0
    source: str = ""  # where the weights came from, in words
    notes: list[str] = field(default_factory=list)  # user-facing remarks (e.g. "fp16 on CPU is slow")

    @property
    def config(self):
        return self.model.config

    @property
    def num_parameters(self) -> int:
        """Distinct parameters (tied embeddings counted once)."""
        seen, total = set(), 0
        for p in self.model.parameters():
            if p.data_ptr() in seen:
                continue
            seen.add(p.data_ptr())
            total += p.numel()
        return total

    @property
    def memory_bytes(self) -> int:
        """Bytes held by parameters and buffers (transformers' get_memory_footprint)."""
        return int(self.model.get_memory_footprint())

    @property
    def context_window(self) -> int:
        """Longest sequence the model was built for, in tokens."""
        return context_window_of(self.model.config, self.tokenizer)

    @property
    def has_chat_template(self) -> bool:
        return has_chat_template(self.tokenizer)

    @property
    def dtype_name(self) -> str:
        return SHORT_DTYPE.get(self.dtype, str(self.dtype).replace("torch.", ""))


def context_window_of(config, tokenizer=None) -> int:
    """Context length from the config (max_position_embeddings / n_positions / ...), else the tokenizer's."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10_000_000:
        return limit
    return 512  # T5-style relative positions have no hard limit; 512 is what they were trained on.


def load_tokenizer(name: str | None = None):
    """Tokenizer of a bundled model (default: the bundled encoder's) or of a local folder / cached Hub id.

    Names resolve exactly as in ``load_model`` (same aliases, same bundled folders, same missing-folder message).
    """
    from transformers import AutoTokenizer

    resolved = canonical_name(name) if name else BUNDLED_ENCODER
    folder, _source = _weights_location(resolved)
    try:
        return AutoTokenizer.from_pretrained(str(folder) if folder is not None else resolved)
    except Exception as exc:  # noqa: BLE001
        if folder is not None and resolved in (BUNDLED_DECODER, BUNDLED_ENCODER):
            raise
        raise ModelLoadError(with_bundled_hint(
            f"Could not load a tokenizer for {code(resolved)}: {escape_markdown(exc)}.")) from exc


def _weights_location(resolved: str, report: ProgressCallback | None = None,
                      policy: ModelPolicy | None = None) -> tuple[Path | None, str]:
    """(folder, source description) for a canonical name: the bundled folders (converting SmolLM2's .gguf once),
    a local folder the server's ``policy`` allows (core.run.model_policy; None = a loopback server's: any), or None for
    a Hugging Face Hub id. Raises ModelLoadError for a refused name or a missing local folder; on an exposed server
    the message does not say whether a path exists."""
    if resolved == BUNDLED_DECODER:
        folder = ensure_bundled_decoder(report)
        return folder, f"bundled SmolLM2 .gguf, converted once to {folder}"
    if resolved == BUNDLED_ENCODER:
        folder = bundled_encoder_dir()
        return folder, f"bundled all-MiniLM-L6-v2 in {folder}"
    try:
        permitted = model_policy.resolve_source(resolved, policy or model_policy.OPEN, bundled_folders())
    except model_policy.ModelPolicyError as exc:
        raise ModelLoadError(with_bundled_hint(str(exc))) from None
    return (Path(permitted.location) if permitted.kind == "folder" else None), permitted.label


def load_model(
    name: str | None = None,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device = "auto",
    quantization: str | None = None,
    attn_implementation: str | None = None,
    *,
    double_quant: bool = False,
    compute_dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    progress: ProgressCallback | None = None,
    policy: ModelPolicy | None = None,
) -> LoadedModel:
    """Load a model by bundled alias, Hugging Face id (local HF cache when offline) or local folder.

    name: None → the bundled SmolLM2-135M-Instruct decoder; "minilm" / BUNDLED_ENCODER → the bundled encoder.
    dtype: "auto" | "fp32" | "fp16" | "bf16" (or a torch.dtype). device: "auto" (CUDA > MPS > CPU) or explicit.
    quantization: None | "int8" | "nf4" | "fp4" (bitsandbytes; options double_quant and compute_dtype for 4-bit).
    attn_implementation: e.g. "eager" (needed for attention weights) or "sdpa"; None lets transformers choose.
    progress(fraction, message) is called while slow steps run (the one-time .gguf conversion).
    policy: which folders / Hub ids the server allows (core.run.model_policy; None = a loopback server's: any).
    Before any weights are allocated, the size from the config is checked against free memory (core.plan.model_size).
    Raises ModelLoadError with a user-facing message on any failure.
    """
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    policy = policy or model_policy.OPEN
    try:
        resolved = canonical_name(model_policy.check_name_text(name) if name is not None else None)
    except model_policy.ModelPolicyError as exc:
        raise ModelLoadError(with_bundled_hint(str(exc))) from None
    target_device = select_device(device)
    torch_dtype = resolve_dtype(dtype, target_device)
    if quantization in ("", "none", "None"):
        quantization = None
    if quantization not in QUANTIZATIONS:
        raise ModelLoadError(f"Unknown quantization '{quantization}'. Use none, 'int8', 'nf4' or 'fp4'.")
    if attn_implementation not in (None, "eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"):
        raise ModelLoadError(f"Unknown attention implementation '{attn_implementation}'. Use 'eager' or 'sdpa'.")
    notes = dtype_notes(torch_dtype, target_device)

    from transformers import AutoConfig, AutoTokenizer

    # 1. Where do the weights come from?
    folder, source = _weights_location(resolved, report, policy)
    if folder is not None and resolved not in (BUNDLED_DECODER, BUNDLED_ENCODER):
        try:  # size-capped, depth-capped read before transformers parses it
            safe_json.read_config_file(folder / "config.json", f"{code(resolved)}'s config.json")
        except safe_json.JSONInputError as exc:
            if policy.exposed:
                raise ModelLoadError(with_bundled_hint(
                    f"{code(resolved)} is not a model folder this server can load.")) from None
            raise ModelLoadError(with_bundled_hint(str(exc))) from None

    # 2. Config → kind → Auto class.
    report(0.9, f"Loading {resolved}…")
    location = str(folder) if folder is not None else resolved
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(with_bundled_hint(_explain_config_failure(resolved, folder, exc))) from exc
    try:
        model_size.check_fits(config, torch_dtype, target_device, quantization)
    except model_size.ModelTooLargeError as exc:
        raise ModelLoadError(f"{code(resolved)}: {exc}") from None
    kind = detect_kind(config)

    load_kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        load_kwargs["attn_implementation"] = attn_implementation
    if quantization:
        check_quantization_runs_here(quantization, target_device)
        compute = resolve_dtype(compute_dtype, target_device) if compute_dtype else torch_dtype
        load_kwargs["quantization_config"] = bnb_config(quantization, compute, double_quant)
        load_kwargs["device_map"] = {"": str(target_device) if target_device.type != "cuda" else target_device.index or 0}

    try:
        model = auto_class(kind).from_pretrained(location, **load_kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(with_bundled_hint(_explain_weights_failure(resolved, quantization, target_device, exc))) from exc
    if not quantization:
        try:
            model.to(target_device)
        except Exception as exc:  # noqa: BLE001 (e.g. CUDA out of memory)
            raise ModelLoadError(f"{code(resolved)} does not fit on {target_device}: {escape_markdown(exc)}") from exc
    model.eval()

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(with_bundled_hint(f"{code(resolved)} loaded but its tokenizer did not: {escape_markdown(exc)}.")) from exc
    ensure_pad_token(tokenizer)

    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=target_device,
        kind=kind,
        name=resolved,
        dtype=torch_dtype,
        quantization=quantization,
        random_weights=False,
        load_seconds=time.perf_counter() - started,
        source=source,
        notes=notes,
    )


def _explain_config_failure(name: str, folder: Path | None, exc: Exception) -> str:
    raw = str(exc)
    text = escape_markdown(raw)
    if folder is not None:
        return f"{code(name)} has no usable config.json ({text.splitlines()[0] if text else type(exc).__name__})."
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if "trust_remote_code" in raw:
        return f"{code(name)} needs custom code from its repository (trust_remote_code), which LLM Lab never runs by default."
    if offline or "offline" in raw.lower() or "connect" in raw.lower() or "resolve" in raw.lower():
        return (
            f"{code(name)} is not a bundled model, not a local folder, and not in the local Hugging Face cache; the Hub is "
            "unreachable (offline), so it cannot be downloaded."
        )
    return f"Could not find the model {code(name)} on the Hugging Face Hub or on disk ({text.splitlines()[0] if text else type(exc).__name__})."


def _explain_weights_failure(name: str, quantization: str | None, device: torch.device, exc: Exception) -> str:
    text = escape_markdown((str(exc).splitlines() or [type(exc).__name__])[0])
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text.lower():
        return f"{code(name)} does not fit in {device} memory ({text})."
    if quantization:
        return f"{quantization} quantization of {code(name)} failed on {device}: {text}."
    return f"Could not load the weights of {code(name)}: {text}."


def ensure_pad_token(tokenizer) -> None:
    """Give a tokenizer without a pad token its EOS token as pad (batched generation and training pad)."""
    if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None) is not None:
        tokenizer.pad_token = tokenizer.eos_token


def release_model(loaded: LoadedModel | None) -> None:
    """Drop the model's weights so memory can be reclaimed (gc + empty the CUDA cache)."""
    if loaded is None:
        return
    loaded.model = None
    free_released_memory()
