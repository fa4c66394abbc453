"""Random-weight models: an architecture built with ``from_config`` from a config (a transformers config, a dict or
a catalog id of ``core.plan.architectures``), its vocabulary and special tokens matched to a real tokenizer, for
architectures whose weights are not available offline."""
from __future__ import annotations

import copy
import time
from typing import Any

import torch

from core.plan import model_size
from core.run.models.bundled import ModelLoadError
from core.run.models.load_options import KINDS, auto_class, detect_kind, dtype_notes, resolve_dtype, select_device
from core.run.models.loading import LoadedModel, ensure_pad_token, load_tokenizer


def _config_from(config) -> Any:
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(config, PretrainedConfig):
        return copy.deepcopy(config)
    if isinstance(config, str):
        try:
            from core.plan import architectures  # memory-planner helper's catalog (optional at import time)

            return architectures.hf_config(config)
        except ImportError as exc:
            raise ModelLoadError(f"Unknown architecture '{config}': the architecture catalog is not available.") from exc
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"Unknown architecture '{config}': {exc}") from exc
    if isinstance(config, dict):
        values = dict(config)
        model_type = values.pop("model_type", None)
        if not model_type:
            raise ModelLoadError("A config dict needs a 'model_type' (e.g. 'llama', 'bert', 't5').")
        try:
            return AutoConfig.for_model(model_type, **values)
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"Cannot build a '{model_type}' config: {exc}") from exc
    raise ModelLoadError(f"random_model needs a config (PretrainedConfig, dict or catalog id), got {type(config).__name__}.")


def _align_config_with_tokenizer(config, tokenizer) -> None:
    """Make vocab size and special-token ids valid for the tokenizer (the random model will see its ids)."""
    vocab = len(tokenizer)
    configs = [config]
    for sub in ("text_config", "encoder", "decoder"):
        if hasattr(config, sub) and getattr(config, sub) is not None and hasattr(getattr(config, sub), "vocab_size"):
            configs.append(getattr(config, sub))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else getattr(tokenizer, "sep_token_id", None)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else getattr(tokenizer, "cls_token_id", None)
    for cfg in configs:
        cfg.vocab_size = vocab
        for attr, value in (("pad_token_id", pad), ("eos_token_id", eos), ("bos_token_id", bos)):
            current = getattr(cfg, attr, None)
            if value is not None and (current is None or not isinstance(current, int) or current >= vocab):
                setattr(cfg, attr, value)
        start = getattr(cfg, "decoder_start_token_id", None)
        if getattr(cfg, "is_encoder_decoder", False) and (start is None or start >= vocab):
            cfg.decoder_start_token_id = pad  # T5 convention: decoding starts from the pad token


def random_model(
    config,
    kind: str | None = None,
    tokenizer=None,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device = "auto",
    attn_implementation: str | None = None,
    seed: int = 0,
) -> LoadedModel:
    """A model built with ``from_config`` (random weights, reproducible with ``seed``), for architectures whose
    weights are not available offline (e.g. a tiny T5 for the attention page).

    tokenizer: a tokenizer object, a bundled name ("minilm", "smollm2"), or None → the bundled MiniLM tokenizer;
    the config's vocab size and special-token ids are set to match it.
    """
    started = time.perf_counter()
    hf_config = _config_from(config)
    target_device = select_device(device)
    torch_dtype = resolve_dtype(dtype, target_device)
    if tokenizer is None or isinstance(tokenizer, str):
        tokenizer = load_tokenizer(tokenizer)
    ensure_pad_token(tokenizer)
    _align_config_with_tokenizer(hf_config, tokenizer)
    kind = kind or detect_kind(hf_config)
    if kind not in KINDS:
        raise ModelLoadError(f"Unknown model kind '{kind}'. Use one of {', '.join(KINDS)}.")
    if attn_implementation:
        hf_config._attn_implementation = attn_implementation
    try:  # size from the config before from_config allocates every weight
        model_size.check_fits(hf_config, torch_dtype, target_device)
    except model_size.ModelTooLargeError as exc:
        raise ModelLoadError(str(exc)) from None
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            kwargs = {"dtype": torch_dtype}
            if attn_implementation:
                kwargs["attn_implementation"] = attn_implementation
            model = auto_class(kind).from_config(hf_config, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"Cannot build a random-weight {kind} from this config: {exc}") from exc
    try:
        model.to(target_device)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"The random-weight model does not fit on {target_device}: {exc}") from exc
    model.eval()
    model_type = getattr(hf_config, "model_type", "model")
    label = getattr(hf_config, "_name_or_path", "") or model_type
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=target_device,
        kind=kind,
        name=f"{label} (random weights)",
        dtype=torch_dtype,
        quantization=None,
        random_weights=True,
        load_seconds=time.perf_counter() - started,
        source=f"{model_type} config, random weights (seed {seed})",
        notes=dtype_notes(torch_dtype, target_device),
    )
