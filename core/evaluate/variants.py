"""The model variants an evaluation can run: the bundled SmolLM2 at each precision, pruned copies of it, and any
OpenAI-compatible endpoint (vLLM, …), each turned into the ``Generate`` function a ``runner.Setup`` calls.

All of them answer greedily with the same plain prompt, so a row's difference from the fp32 row is the variant's
doing: quantization (bitsandbytes), pruning (``core.optimize.pruning``; Wanda calibrates on the distillation text,
not on the task) or the serving engine's kernels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from core.evaluate.runner import EvaluationInputError, Generate, Setup, local_generator


@dataclass(frozen=True)
class Variant:
    """One choice in the Evaluate page's list: how to load it (``load`` options of ``core.run.models.load_model``)
    and, for a pruned copy, how to prune the fp32 model (``prune``: arguments of
    ``core.optimize.variants.pruned_copy``)."""

    label: str
    kind: str  # "precision" | "pruned" | "endpoint"
    load: dict = field(default_factory=dict)
    prune: dict = field(default_factory=dict)
    help: str = ""


ENDPOINT = "endpoint"
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
    ENDPOINT: Variant("Endpoint", "endpoint",
                      help="The model an OpenAI-compatible server (vLLM, …) serves, asked through /v1/completions."),
}
LoadModel = Callable[..., object]  # load_model-like: options → a LoadedModel


def endpoint_generator(endpoint) -> Generate:
    """Greedy completions from a server (``core.serve.endpoints.Endpoint``): temperature 0, the same prompt text."""
    from core.run.sampling import DecodingSettings
    from core.serve import endpoints

    def generate(prompt: str, max_new_tokens: int) -> str:
        settings = DecodingSettings(do_sample=False, max_new_tokens=int(max_new_tokens))
        return endpoints.generate(endpoint, prompt, settings, top_logprobs=0).completion

    return generate


def variant_generator(key: str, load: LoadModel, *, endpoint=None) -> tuple[str, Generate]:
    """(label, Generate) of one variant. ``load(**options)`` loads a model (a page passes its cached loader);
    a pruned variant is a pruned copy of the fp32 model, made here. ``endpoint`` is needed for "endpoint"."""
    variant = VARIANTS.get(key)
    if variant is None:
        raise EvaluationInputError(f"Unknown model variant {key!r}; choose from {', '.join(VARIANTS)}.")
    if variant.kind == "endpoint":
        if endpoint is None:
            raise EvaluationInputError("The endpoint variant needs a server: choose one or enter its URL.")
        return f"{endpoint.name}: {endpoint.model}", endpoint_generator(endpoint)
    loaded = load(**variant.load)
    if variant.kind == "pruned":
        from core.optimize.variants import calibration_ids, pruned_copy

        loaded = pruned_copy(loaded, calibration=calibration_ids(loaded.tokenizer), **variant.prune)
    return variant.label, local_generator(loaded)


def setups(keys, techniques, load: LoadModel, *, endpoint=None) -> list[Setup]:
    """One ``Setup`` per (variant, technique), variants in the order given."""
    out = []
    for key in keys:
        label, generate = variant_generator(key, load, endpoint=endpoint)
        out += [Setup(label, technique, generate) for technique in techniques]
    return out
