"""One model at fp32 / fp16 / bf16 / int8 / nf4 / fp4, compared on measured memory, speed and quality.

What is measured for every variant (``compare_variants``), one variant loaded at a time:

- load time; weight memory: every tensor the model holds (parameters, buffers and the bitsandbytes quantization
  constants — absmax, code books, int8 row scales — that transformers' ``get_memory_footprint()`` leaves out), the
  footprint transformers reports, and on CUDA ``torch.cuda.memory_allocated`` growth;
- the memory planner's prediction for the same storage format (``core.plan.memory.weight_memory``) and the error in %;
- peak memory during a greedy generation: CUDA peak statistics on a GPU; on CPU the process's resident-memory peak
  (VmHWM, reset through ``/proc/self/clear_refs`` just before generating; where Linux does not allow that or does
  not keep the mark for unmapped memory, RSS sampled every 2 ms in a thread) minus the resident memory before the variant was loaded (it can read low when the
  allocator reuses memory freed by the previous variant); quantized CPU variants are first detached from the
  memory-mapped fp32 checkpoint (``detach_from_checkpoint``) so its pages do not count;
- tokens/s of the greedy generation (prompt prefill included);
- quality the way llama.cpp's ``perplexity`` tool reports it (``--kl-divergence``): perplexity on a reference text,
  ΔPPL versus the baseline (fp32), mean and 99th-percentile KL divergence of next-token distributions, top-1 agreement;
- greedy and same-seed sampled outputs, with the first position where they diverge from the baseline's.

Quantization formats: bitsandbytes LLM.int8() (Dettmers et al. 2022, "LLM.int8(): 8-bit Matrix Multiplication for
Transformers at Scale") and 4-bit NF4 / FP4 with optional double quantization (Dettmers et al. 2023, "QLoRA", §3),
through transformers' BitsAndBytesConfig (core.run.models.load_model).

Plain Python, no Streamlit.

Modules: ``variants`` (the formats and the comparison's inputs), ``quality`` (metrics from logits), ``weights``
(measured and predicted weight memory) and ``compare`` (the comparison and its tables).
"""
from __future__ import annotations

from core.common.process_memory import PeakMemoryMeter, free_released_memory, process_rss_bytes
from core.run.quantization.compare import (CSV_COLUMNS, DISPLAY_COLUMNS, MEMORY_SPEED_COLUMNS, QUALITY_COLUMNS,
                                           RESULT_COLUMNS, VariantResult, compare_variants, quiet_libraries,
                                           results_csv, summary_table, unavailable_variants)
from core.run.quantization.quality import (first_divergence, kl_divergence, kl_percentile, log_softmax,
                                           perplexity_from_logits, token_diff, token_nll, top1_agreement)
from core.run.quantization.variants import (COMPUTE_DTYPES, DEFAULT_MAX_NEW_TOKENS, DEFAULT_PROMPT,
                                            DEFAULT_REFERENCE_TOKENS, DEFAULT_VARIANTS, KL_PERCENTILE,
                                            MAX_NEW_TOKENS_LIMIT, MAX_PROMPT_CHARS, MAX_REFERENCE_TOKENS_LIMIT,
                                            MIN_REFERENCE_TOKENS, REFERENCE_TEXT_PATH, UNQUANTIZED_DTYPES, VARIANT_SPECS,
                                            VARIANTS, ProgressCallback, QuantizationInputError, VariantSpec,
                                            load_reference_text, normalize_variants)
from core.run.quantization.weights import (detach_from_checkpoint, device_memory_in_use, model_weight_bytes,
                                           planner_model, planner_weight_format, predicted_weight_bytes)
