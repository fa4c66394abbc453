"""Logit lens: what each layer's residual stream "predicts" if the rest of the network were skipped.

Method: nostalgebraist 2020, "interpreting GPT: the logit lens" (LessWrong,
https://www.lesswrong.com/posts/AcKRB8wDpdaN6v6ru/interpreting-gpt-the-logit-lens). The residual stream after
block ℓ, h_ℓ, is sent through the model's own final norm and unembedding — logits_ℓ = W_U · norm(h_ℓ) — and read as
a next-token distribution softmax(logits_ℓ). Row 0 is the token embeddings (before any block), row L the last block,
where the lens is exactly the model's output (``matches_model`` checks this on every call).

What the lens does NOT show: intermediate layers were never trained to be read by the final norm and unembedding,
so an early layer's "prediction" can be meaningless even when the layer carries the information in another basis
(the tuned lens of Belrose et al. 2023, arXiv:2303.08112, learns one affine map per layer for that reason); it says
nothing about *which* components (heads, MLPs) wrote the prediction (that needs attribution / patching); and a
token appearing at layer ℓ is correlation, not a causal claim.

Arrays (numpy): ``top_token_ids`` / ``top_probs`` [layers + 1, positions, top_k], ``final_rank`` / ``final_probs``
[layers + 1, positions]; position t predicts token t + 1.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from core.run.tokens import token_label


MAX_LENS_TOKENS = 256  # positions per call: one layer's logits are positions × vocab floats (256 × 49,152 × 4 B ≈ 50 MB)
MAX_TOP_K = 20

# Where the final norm lives, relative to the model's base (``model.base_model``), by family.
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f", "decoder.final_layer_norm",
                     "decoder.norm", "language_model.norm")


class LensInputError(ValueError):
    """Input the lens cannot read (empty text, an encoder, too many tokens); the message is user-facing."""


@dataclass(frozen=True)
class LensResult:
    tokens: list[str]  # input tokens, readable labels, one per position
    token_ids: list[int]
    top_token_ids: np.ndarray  # int64 [layers + 1, positions, top_k], most likely first
    top_probs: np.ndarray  # float32 [layers + 1, positions, top_k]
    final_rank: np.ndarray  # int64 [layers + 1, positions]: 1 = the layer ranks the model's final top token first
    final_probs: np.ndarray  # float32 [layers + 1, positions]: that token's probability at each layer
    final_token_ids: list[int]  # the full model's most likely next token at each position
    token_texts: dict[int, str]  # readable label of every token id in top_token_ids
    model_name: str
    max_abs_diff_vs_model: float  # last row's logits vs the model's own output logits
    notes: list[str] = field(default_factory=list)

    @property
    def n_layers(self) -> int:
        return int(self.top_probs.shape[0]) - 1

    @property
    def matches_model(self) -> bool:
        return self.max_abs_diff_vs_model <= 1e-3

    @property
    def row_labels(self) -> list[str]:
        return ["embeddings"] + [f"layer {i}" for i in range(1, self.n_layers + 1)]

    def first_top1_layer(self) -> list[int | None]:
        """Per position, the first row from which the final top token stays ranked first up to the last row."""
        out: list[int | None] = []
        for t in range(self.final_rank.shape[1]):
            ranks = self.final_rank[:, t]
            row = None
            for i in range(len(ranks) - 1, -1, -1):
                if ranks[i] != 1:
                    break
                row = i
            out.append(row)
        return out

    def to_dict(self) -> dict:
        return {
            "model": self.model_name, "tokens": self.tokens, "token_ids": self.token_ids,
            "row_labels": self.row_labels,
            "top_token_ids": self.top_token_ids.tolist(), "top_probs": self.top_probs.round(6).tolist(),
            "final_rank": self.final_rank.tolist(), "final_probs": self.final_probs.round(6).tolist(),
            "final_token_ids": self.final_token_ids,
            "token_texts": {str(k): v for k, v in self.token_texts.items()},
            "max_abs_diff_vs_model": self.max_abs_diff_vs_model, "notes": self.notes,
        }


def final_norm(model) -> torch.nn.Module:
    """The model's final norm (applied after the last block, before the unembedding)."""
    base = getattr(model, "base_model", model)
    for root in (base, model):
        for name in _FINAL_NORM_NAMES:
            module = root
            for part in name.split("."):
                module = getattr(module, part, None)
                if module is None:
                    break
            if isinstance(module, torch.nn.Module):
                return module
    raise LensInputError(
        f"Could not find the final norm of {type(model).__name__} (looked for {', '.join(_FINAL_NORM_NAMES)}); "
        "the logit lens needs it to read intermediate layers."
    )


def _check(loaded, text: str, top_k: int) -> tuple[list[int], int]:
    if loaded is None or loaded.model is None:
        raise LensInputError("No model is loaded.")
    if loaded.kind != "decoder":
        raise LensInputError(
            f"'{loaded.name}' is a{'n' if loaded.kind[0] in 'ae' else ''} {loaded.kind} model. The logit lens reads a causal "
            "language model's next-token predictions; pick a decoder such as the bundled SmolLM2."
        )
    if text is None or not str(text).strip():
        raise LensInputError("The text is empty: type a sentence to look inside the model.")
    k = int(top_k)
    if not 1 <= k <= MAX_TOP_K:
        raise LensInputError(f"top_k must be between 1 and {MAX_TOP_K}; got {top_k}.")
    ids = list(loaded.tokenizer(str(text))["input_ids"])
    if not ids:
        raise LensInputError("The text produced no tokens.")
    return ids, k


def logit_lens(loaded, text: str, top_k: int = 5, max_tokens: int = MAX_LENS_TOKENS) -> LensResult:
    """Each layer's residual stream through the final norm and unembedding (nostalgebraist 2020).

    The residual stream entering block ℓ is ``hidden_states[ℓ]`` (transformers' ``output_hidden_states``); the one
    leaving the last block is captured at the final norm's input, so the last row is computed exactly the way the
    model computes its own logits. Texts longer than ``max_tokens`` keep their last ``max_tokens`` tokens (noted).
    """
    ids, k = _check(loaded, text, top_k)
    notes: list[str] = []
    if len(ids) > max_tokens:
        notes.append(f"The text has {len(ids)} tokens; the lens reads the last {max_tokens} (each layer's logits "
                     f"are positions × vocabulary floats).")
        ids = ids[-max_tokens:]
    model = loaded.model
    norm = final_norm(model)
    unembed = model.get_output_embeddings()
    if unembed is None:
        raise LensInputError(f"{type(model).__name__} has no output embedding (unembedding) to read layers with.")
    captured: list[torch.Tensor] = []
    caller = threading.get_ident()  # the model may be shared: record only this call's forward, not another session's

    def capture(_module, args):
        if threading.get_ident() == caller:
            captured.append(args[0].detach())

    hook = norm.register_forward_pre_hook(capture)
    input_ids = torch.tensor([ids], dtype=torch.long, device=loaded.device)
    try:
        with torch.no_grad():
            out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_hidden_states=True)
    finally:
        hook.remove()
    if not captured or out.hidden_states is None:
        raise LensInputError("The model did not expose its hidden states; the logit lens cannot read it.")
    n_layers = len(out.hidden_states) - 1
    streams = list(out.hidden_states[:n_layers]) + [captured[-1]]  # embeddings, after blocks 1..L-1, after block L
    model_logits = out.logits[0].float()

    def read(stream: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return unembed(norm(stream))[0].float()

    last_logits = read(streams[-1])
    diff = float((last_logits - model_logits).abs().max())
    if diff > 1e-3:
        notes.append(f"This model's output differs from norm + unembedding of the last block by up to {diff:.3g} "
                     "(it post-processes its logits, e.g. soft-capping); the last row is the plain lens reading.")
    final_ids = torch.argmax(model_logits, dim=-1)  # [positions]
    rows = len(streams)
    positions = len(ids)
    top_ids = np.zeros((rows, positions, k), dtype=np.int64)
    top_probs = np.zeros((rows, positions, k), dtype=np.float32)
    ranks = np.zeros((rows, positions), dtype=np.int64)
    final_probs = np.zeros((rows, positions), dtype=np.float32)
    gather = final_ids.unsqueeze(-1)
    for row, stream in enumerate(streams):
        logits = last_logits if row == rows - 1 else read(stream)
        probs = torch.softmax(logits, dim=-1)
        values, indices = torch.topk(probs, k, dim=-1)
        top_ids[row], top_probs[row] = indices.cpu().numpy(), values.cpu().numpy()
        target = probs.gather(-1, gather)  # [positions, 1]
        ranks[row] = ((probs > target).sum(-1) + 1).cpu().numpy()
        final_probs[row] = target[:, 0].cpu().numpy()
    tokenizer = loaded.tokenizer
    texts = {int(i): token_label(tokenizer, int(i)) for i in np.unique(np.concatenate([top_ids.ravel(), final_ids.cpu().numpy()]))}
    return LensResult(
        tokens=[token_label(tokenizer, i) for i in ids], token_ids=ids, top_token_ids=top_ids, top_probs=top_probs,
        final_rank=ranks, final_probs=final_probs, final_token_ids=[int(i) for i in final_ids.tolist()],
        token_texts=texts, model_name=loaded.name, max_abs_diff_vs_model=diff, notes=notes,
    )
