"""Model optimization beside quantization, measured on the model's own text: ``distillation`` (a pruned student
trained on the full model's soft targets) and ``variants`` (the line-up of fp32, int8, NF4, pruned and distilled,
and the pruning study). The pruning itself is a model transformation, in ``core.run.pruning``."""
