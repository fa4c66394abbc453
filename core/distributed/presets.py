"""Architectures small enough to train on a few CPU ranks in seconds (random weights: values change neither memory
nor communication), plus any catalog model the user picks."""
from __future__ import annotations

PRESETS = {
    "tiny-llama": {
        "label": "Tiny Llama (4 layers × 256, 4.2 M parameters)",
        "architecture": {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                         "num_key_value_heads": 4, "intermediate_size": 688, "vocab_size": 2048,
                         "max_position_embeddings": 256, "tie_word_embeddings": False},
    },
    "tiny-llama-tied": {
        "label": "Tiny Llama, tied embeddings, GQA (8 layers × 128, 2.0 M parameters)",
        "architecture": {"model_type": "llama", "hidden_size": 128, "num_hidden_layers": 8, "num_attention_heads": 4,
                         "num_key_value_heads": 2, "intermediate_size": 344, "vocab_size": 4096,
                         "max_position_embeddings": 512, "tie_word_embeddings": True},
    },
    "smollm2-135m": {
        "label": "SmolLM2-135M shape (30 layers × 576, 135 M parameters; minutes per run)",
        "architecture": "HuggingFaceTB/SmolLM2-135M-Instruct",
    },
}
