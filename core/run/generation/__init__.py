"""Text generation: plain (``generate_text``) and instrumented streaming (``stream_generation``).

The streaming path runs ``model.generate()`` itself, in a worker thread, and records the scores at each stage of the
logits pipeline through recorder processors placed between transformers' own processors (see core.run.sampling):

    raw logits ─▶ repetition penalty ─▶ no-repeat n-gram ─▶ temperature ─▶ [recorded] ─▶ top-k ─▶ top-p ─▶ min-p
               ─▶ typical ─▶ ε ─▶ η ─▶ (temperature, if placed last) ─▶ [recorded] ─▶ sample / argmax

so the distribution shown for a token is exactly the one generate() sampled it from. A ``BaseStreamer`` hands each
chosen token over; a ``StoppingCriteria`` reads the stop flag. Beam search keeps several hypotheses alive and only
knows the winner at the end, so it is not streamed: it runs as a plain generate() and each chosen token's raw
probability is recomputed afterwards with one forward pass.

Modules: ``prepare`` (prompt preparation, plain generation), ``events`` (what a stream yields) and ``stream`` (the
instrumented streaming and continuation from a prefix). Import the names below from this package.
"""
from __future__ import annotations

from core.run.generation.events import (STAGE_LABELS, STAGES, Alternative, GenerationResult, StepEvent,
                                        decode_tokens_per_s)
from core.run.generation.prepare import (GenerationInputError, PreparedPrompt, generate_kwargs, generate_text,
                                         last_token_logits, next_token_logits, prepare_generation, prepare_prompt)
from core.run.generation.stream import (GenerationError, GenerationStream, continue_from, run_generation,
                                        stream_generation)


__all__ = ["STAGES", "STAGE_LABELS", "Alternative", "GenerationError", "GenerationInputError", "GenerationResult",
           "GenerationStream", "PreparedPrompt", "StepEvent", "continue_from", "decode_tokens_per_s",
           "generate_kwargs", "generate_text", "last_token_logits", "next_token_logits", "prepare_generation",
           "prepare_prompt", "run_generation", "stream_generation"]
