"""Model optimization beside quantization: pruning (``pruning``) measured on the model's own text."""
