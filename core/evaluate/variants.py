"""The model variants an evaluation can run: the bundled SmolLM2 at each precision, pruned copies of it, SmolLM2 with
a fine-tuned PEFT adapter (LoRA or prompt tuning), and any OpenAI-compatible endpoint (vLLM, …), each turned into the
``Generate`` function a ``runner.Setup`` calls.

All of them answer greedily with the same plain prompt, so a row's difference from the fp32 row is the variant's
doing: quantization (bitsandbytes), pruning (``core.run.pruning``; Wanda calibrates on the distillation text,
not on the task), the adapter or the serving engine's kernels.
"""
from __future__ import annotations

import copy
import io
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.evaluate.runner import EvaluationInputError, Generate, Setup, local_generator


@dataclass(frozen=True)
class Variant:
    """One choice in the Evaluate page's list: how to load it (``load`` options of ``core.run.models.load_model``)
    and, for a pruned copy, how to prune the fp32 model (``prune``: arguments of
    ``core.run.pruning.pruned_copy``)."""

    label: str
    kind: str  # "precision" | "pruned" | "adapter" | "endpoint"
    load: dict = field(default_factory=dict)
    prune: dict = field(default_factory=dict)
    help: str = ""


ENDPOINT = "endpoint"
ADAPTER = "adapter"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")  # what PEFT's save_pretrained writes
MAX_ADAPTER_BYTES = 200 * 2**20
VARIANTS: dict[str, Variant] = {
    "fp32": Variant("SmolLM2-135M fp32", "precision", {"dtype": "fp32"}, help="The bundled model as published."),
    "bf16": Variant("SmolLM2-135M bf16", "precision", {"dtype": "bf16"}, help="16-bit brain float weights."),
    "int8": Variant("SmolLM2-135M int8 (bitsandbytes)", "precision", {"dtype": "fp32", "quantization": "int8"},
                    help="LLM.int8() (Dettmers et al. 2022)."),
    "nf4": Variant("SmolLM2-135M NF4 (bitsandbytes)", "precision", {"dtype": "fp32", "quantization": "nf4"},
                   help="4-bit NormalFloat (QLoRA, Dettmers et al. 2023)."),
    "wanda-50": Variant("SmolLM2-135M Wanda 50 % sparse", "pruned", {"dtype": "fp32"},
                        {"method": "wanda", "sparsity": 0.5},
                        help="Half of every layer's weights set to zero by |W|·‖X‖ (Sun et al. 2023)."),
    "layers-4": Variant("SmolLM2-135M 4 layers removed", "pruned", {"dtype": "fp32"},
                        {"method": "remove-layers", "layers": 4},
                        help="The 4 of 30 layers with the lowest Block Influence taken out (Men et al. 2024)."),
    "heads-1": Variant("SmolLM2-135M 6 of 9 heads per layer", "pruned", {"dtype": "fp32"},
                       {"method": "remove-heads", "head_groups": 1},
                       help="In every layer the key/value head group (1 KV + 3 query heads) that adds least to the "
                            "output taken out (Michel et al. 2019; Minitron)."),
    ADAPTER: Variant("SmolLM2-135M + fine-tuned adapter", "adapter", {"dtype": "fp32"},
                     help="SmolLM2 fp32 with a PEFT adapter: the one trained on the Fine-tune page in this session, or "
                          "an uploaded zip of adapter_model.safetensors and adapter_config.json."),
    ENDPOINT: Variant("Endpoint", "endpoint",
                      help="The model an OpenAI-compatible server (vLLM, …) serves, asked through /v1/completions."),
}
LoadModel = Callable[..., object]  # load_model-like: options → a LoadedModel


def endpoint_generator(endpoint) -> Generate:
    """Greedy completions from a server (``core.serve.endpoints.Endpoint``): temperature 0, the same prompt text."""
    from core.run.sampling import DecodingSettings
    from core.serve.endpoint_generation import generate as generate_on

    def generate(prompt: str, max_new_tokens: int) -> str:
        settings = DecodingSettings(do_sample=False, max_new_tokens=int(max_new_tokens))
        return generate_on(endpoint, prompt, settings, top_logprobs=0).completion

    return generate


def adapter_files_from_zip(data: bytes) -> dict[str, bytes]:
    """The two files of a PEFT adapter from a zip (the Fine-tune page's download), checked."""
    if not data:
        raise EvaluationInputError("The adapter file is empty.")
    if len(data) > MAX_ADAPTER_BYTES:
        raise EvaluationInputError(f"The adapter file is {len(data) / 1e6:,.0f} MB; the limit is "
                                   f"{MAX_ADAPTER_BYTES / 1e6:,.0f} MB.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = {Path(n).name: n for n in archive.namelist()}
            missing = [f for f in ADAPTER_FILES if f not in names]
            if missing:
                raise EvaluationInputError(f"The zip has no {' or '.join(missing)}: upload the adapter the Fine-tune "
                                           "page downloads (PEFT's save_pretrained files).")
            sizes = sum(archive.getinfo(names[f]).file_size for f in ADAPTER_FILES)
            if sizes > MAX_ADAPTER_BYTES:
                raise EvaluationInputError("The adapter unpacks to more than the size limit.")
            return {f: archive.read(names[f]) for f in ADAPTER_FILES}
    except zipfile.BadZipFile:
        raise EvaluationInputError("That file is not a zip archive: upload the adapter zip from the Fine-tune page.") \
            from None


def with_adapter(base, files: dict[str, bytes], name: str = ADAPTER):
    """A copy of ``base`` (a LoadedModel) with the PEFT adapter in ``files`` loaded onto it
    (``PeftModel.from_pretrained``); ``base`` itself is left as it was."""
    from peft import PeftModel

    from core.run.models import as_loaded

    with tempfile.TemporaryDirectory(prefix="llm-lab-eval-adapter-") as folder:
        for file_name, data in files.items():
            (Path(folder) / file_name).write_bytes(data)
        try:
            model = PeftModel.from_pretrained(copy.deepcopy(base.model), folder)
        except Exception as exc:  # a config for another model, a corrupt tensor file, …
            raise EvaluationInputError(f"This adapter does not load onto {base.name}: {exc}") from exc
    model.eval()
    return as_loaded(base, model, name, f"PEFT adapter ({model.peft_config['default'].peft_type})")


def variant_generator(key: str, load: LoadModel, *, endpoint=None, adapter: dict[str, bytes] | None = None
                      ) -> tuple[str, Generate]:
    """(label, Generate) of one variant. ``load(**options)`` loads a model (a page passes its cached loader);
    a pruned variant is a pruned copy of the fp32 model and an adapter variant the fp32 model with ``adapter``
    (PEFT's files) on a copy, made here. ``endpoint`` is needed for "endpoint"."""
    variant = VARIANTS.get(key)
    if variant is None:
        raise EvaluationInputError(f"Unknown model variant {key!r}; choose from {', '.join(VARIANTS)}.")
    if variant.kind == "endpoint":
        if endpoint is None:
            raise EvaluationInputError("The endpoint variant needs a server: choose one or enter its URL.")
        return f"{endpoint.name}: {endpoint.model}", endpoint_generator(endpoint)
    return variant.label, local_generator(variant_model(key, load, adapter=adapter))


def variant_model(key: str, load: LoadModel, *, adapter: dict[str, bytes] | None = None):
    """The LoadedModel of a local variant: ``load(**options)``, then pruned or given the adapter on a copy."""
    variant = VARIANTS.get(key)
    if variant is None or variant.kind == "endpoint":
        raise EvaluationInputError(f"{key!r} is not a local model variant; choose from "
                                   f"{', '.join(k for k, v in VARIANTS.items() if v.kind != 'endpoint')}.")
    if variant.kind == "adapter" and not adapter:
        raise EvaluationInputError("The adapter variant needs an adapter: train one on the Fine-tune page or upload "
                                   "its zip.")
    loaded = load(**variant.load)
    if variant.kind == "adapter":
        loaded = with_adapter(loaded, adapter, variant.label)
    elif variant.kind == "pruned":
        from core.run.pruning import calibration_ids, pruned_copy

        loaded = pruned_copy(loaded, calibration=calibration_ids(loaded.tokenizer), **variant.prune)
    return loaded


def setups(keys, techniques, load: LoadModel, *, endpoint=None, adapter: dict[str, bytes] | None = None) -> list[Setup]:
    """One ``Setup`` per (variant, technique), variants in the order given."""
    out = []
    for key in keys:
        label, generate = variant_generator(key, load, endpoint=endpoint, adapter=adapter)
        out += [Setup(label, technique, generate) for technique in techniques]
    return out
