"""Model runtime: load real models (bundled, Hugging Face Hub, local folder) or random-weight ones.

Every page that runs a model goes through :func:`load_model` (or :func:`random_model` for architectures
whose weights are not available offline). Plain Python, no Streamlit: the page layer caches the result
(``views/components/model_cache.py``).

Bundled models (work offline, installed as pip packages, never imported):

* decoder ``HuggingFaceTB/SmolLM2-135M-Instruct``: shipped as a Q4_1 ``.gguf`` file. transformers reads it with
  ``gguf_file=`` and de-quantizes it to fp32 (~20 s, see https://huggingface.co/docs/transformers/gguf); we do that
  once and save a normal safetensors folder in the local cache (``$LLM_LAB_CACHE`` or ``~/.cache/llm-lab``), so
  later loads take about a second.
* encoder ``sentence-transformers/all-MiniLM-L6-v2`` (BERT): a normal folder inside its package.

Quantization hook: ``quantization="int8" | "nf4" | "fp4"`` builds a ``transformers.BitsAndBytesConfig``
(https://huggingface.co/docs/transformers/quantization/bitsandbytes); bitsandbytes 0.50 runs all three on CPU.

Modules: ``bundled`` (the bundled models, their names and folders), ``load_options`` (device, dtype, kind,
quantization config), ``loading`` (``LoadedModel``, load by name, release), ``random_weights`` (build from a config
with random weights) and ``derived`` (``as_loaded``: a LoadedModel around a transformed copy of another's model). Import
the names below from this package.
"""
from __future__ import annotations

from core.run.models.bundled import (BUNDLED_DECODER, BUNDLED_ENCODER, ModelLoadError, ProgressCallback,
                                     bundled_decoder_cache_dir, bundled_decoder_is_converted, bundled_encoder_dir,
                                     bundled_folders, bundled_gguf_path, cache_root, canonical_name,
                                     ensure_bundled_decoder)
from core.run.models.derived import as_loaded
from core.run.models.load_options import (DTYPE_NAMES, KINDS, QUANTIZATIONS, SHORT_DTYPE, bnb_config, detect_kind,
                                          resolve_dtype, select_device)
from core.run.models.loading import LoadedModel, context_window_of, load_model, load_tokenizer, release_model
from core.run.models.random_weights import random_model

__all__ = ["BUNDLED_DECODER", "BUNDLED_ENCODER", "DTYPE_NAMES", "KINDS", "QUANTIZATIONS", "SHORT_DTYPE", "LoadedModel",
           "ModelLoadError", "ProgressCallback", "as_loaded", "bnb_config", "bundled_decoder_cache_dir",
           "bundled_decoder_is_converted", "bundled_encoder_dir", "bundled_folders", "bundled_gguf_path", "cache_root",
           "canonical_name", "context_window_of", "detect_kind", "ensure_bundled_decoder", "load_model",
           "load_tokenizer", "random_model", "release_model", "resolve_dtype", "select_device"]
