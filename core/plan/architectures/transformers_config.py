"""transformers interop: a ``PretrainedConfig`` for any supported architecture (for ``AutoModelFor*.from_config``)
and the checkpoint's weight tying on a model built that way."""
from __future__ import annotations

from core.plan.architectures import families as _families
from core.plan.architectures.config import ALIAS_KEYS, DERIVED_KEYS, get_config
from core.plan.architectures.shapes import ArchitectureError

def _native_kwargs(c: dict) -> dict:
    mtype = c["model_type"]
    if mtype in _families.MODEL_TYPES:
        return _families.native_kwargs(c)
    if mtype == "gpt2":
        return {"n_layer": c["num_hidden_layers"], "n_embd": c["hidden_size"], "n_head": c["num_attention_heads"],
                "n_inner": c["intermediate_size"], "n_positions": c["max_position_embeddings"],
                "vocab_size": c["vocab_size"]}
    if mtype == "bloom":
        return {"n_layer": c["num_hidden_layers"], "hidden_size": c["hidden_size"],
                "n_head": c["num_attention_heads"], "vocab_size": c["vocab_size"]}
    if mtype == "t5":
        return {"num_layers": c["num_hidden_layers"], "num_decoder_layers": c["num_decoder_layers"],
                "d_model": c["hidden_size"], "num_heads": c["num_attention_heads"], "d_kv": c["head_dim"],
                "d_ff": c["intermediate_size"], "vocab_size": c["vocab_size"],
                "feed_forward_proj": c["feed_forward_proj"], "tie_word_embeddings": c["tie_word_embeddings"],
                "relative_attention_num_buckets": c["relative_attention_num_buckets"]}
    common = {"num_hidden_layers": c["num_hidden_layers"], "hidden_size": c["hidden_size"],
              "num_attention_heads": c["num_attention_heads"], "intermediate_size": c["intermediate_size"],
              "vocab_size": c["vocab_size"], "max_position_embeddings": c["max_position_embeddings"]}
    if mtype in ("bert", "roberta"):
        return {**common, "type_vocab_size": c["type_vocab_size"]}
    kwargs = {**common, "num_key_value_heads": c["num_key_value_heads"], "head_dim": c["head_dim"],
              "tie_word_embeddings": c["tie_word_embeddings"]}
    if mtype == "llama":
        kwargs.update(attention_bias=c["attention_bias"], mlp_bias=c["mlp_bias"])
    if mtype == "mistral":
        kwargs["sliding_window"] = c["sliding_window_effective"]
    return kwargs


_PASS_THROUGH_SKIP = {"_name_or_path", "transformers_version", "model_type", "auto_map", "quantization_config"}


def hf_config(model):
    """A ``transformers.PretrainedConfig`` for the model (``AutoConfig.for_model``), for ``AutoModelFor*.from_config``.

    Shape keys come from the normalized config; other config.json keys (rope_theta, token ids, activation, ...) pass
    through. Note (transformers 5): ``T5Config`` always sets ``tie_word_embeddings=True``, so a FLAN-T5 model built
    with ``from_config`` shares lm_head with the embedding; ``apply_checkpoint_tying`` unties it like the checkpoint.
    """
    from transformers import AutoConfig  # local import: keeps `import core.plan.architectures` light

    c = get_config(model)
    kwargs = {k: v for k, v in c.items()
              if k not in ALIAS_KEYS and k not in DERIVED_KEYS and k not in _PASS_THROUGH_SKIP
              and k not in ("kind",)}
    kwargs.update(_native_kwargs(c))
    try:
        config = AutoConfig.for_model(c["model_type"], **kwargs)
    except Exception as exc:  # transformers validates values (strict dataclasses)
        raise ArchitectureError(f"transformers rejected this config: {exc}") from exc
    if c.get("_name_or_path"):
        config._name_or_path = c["_name_or_path"]
    return config


def apply_checkpoint_tying(torch_model, model) -> None:
    """Give ``lm_head`` its own weights when the architecture's checkpoint has them untied (FLAN-T5 in transformers 5).

    transformers 5 ties T5's lm_head to ``shared`` in ``from_config`` (T5Config forces tie_word_embeddings=True) but
    keeps them separate when loading a T5 v1.1 checkpoint whose tensors differ (modeling_utils.tie_weights). Call
    this after ``from_config`` so ``num_parameters()`` matches ``param_count``. No-op for other models.
    """
    import torch

    c = get_config(model)
    if c["tie_word_embeddings"] or c["kind"] == "encoder":
        return
    out_emb, in_emb = torch_model.get_output_embeddings(), torch_model.get_input_embeddings()
    if out_emb is not None and in_emb is not None and out_emb.weight is in_emb.weight:
        out_emb.weight = torch.nn.Parameter(in_emb.weight.detach().clone())
        if hasattr(torch_model, "all_tied_weights_keys"):
            torch_model.all_tied_weights_keys.pop("lm_head.weight", None)
