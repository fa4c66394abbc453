"""Instrumented streaming (``stream_generation``): ``model.generate()`` in a worker thread with recorder processors
between transformers' own, a streamer handing each chosen token over and a stop flag; and ``continue_from``, which
resumes from a chosen prefix of generated tokens."""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any, Iterator

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from core.common.scheduler import GENERATION_QUEUE, QueueLeft, QueueStatus, request_limits
from core.run.generation.events import Alternative, GenerationResult, StepEvent
from core.run.generation.prepare import (GenerationError, GenerationInputError, eos_ids, generate_kwargs, model_inputs,
                                         new_tokens, prepare_generation)
from core.run.models import LoadedModel
from core.run.sampling import (DecodingSettings, filter_warpers, penalty_processors, shape_distribution,
                               temperature_warpers, top_tokens)
from core.run.tokens import TokenDecoder


class _StageRecorder(LogitsProcessor):
    """Passes scores through unchanged, remembering them for the step being built."""

    def __init__(self, recording: "_Recording", stage: str):
        self.recording = recording
        self.stage = stage

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.recording.record(self.stage, scores)
        return scores


class _Recording(BaseStreamer):
    """Collects the stage scores of each step and pairs them with the token generate() chose (via put())."""

    def __init__(self, out: "queue.Queue", started: float, stop_flag: threading.Event, measure):
        self.out = out
        self.measure = measure
        self.started = started
        self.stop_flag = stop_flag
        self.pending: dict[str, torch.Tensor] = {}
        self.steps: deque = deque()
        self.prompt_seen = False

    def record(self, stage: str, scores: torch.Tensor) -> None:
        # raw logits are the tensor generate() keeps using, so copy them; later stages are fresh tensors.
        self.pending[stage] = scores[0].detach().clone() if stage == "raw" else scores[0].detach()
        if stage == "filtered":
            self.steps.append(self.pending)
            self.pending = {}

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        elapsed = time.perf_counter() - self.started
        token_id = int(value.reshape(-1)[0])
        stages = self.steps.popleft()
        self.out.put(("token", token_id, self.measure(token_id, stages), elapsed))

    def end(self) -> None:
        pass


class _StopWhenFlagged(StoppingCriteria):
    def __init__(self, flag: threading.Event):
        self.flag = flag

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.flag.is_set(), dtype=torch.bool, device=input_ids.device)


class GenerationStream:
    """Iterate to get a StepEvent per generated token; ``result`` is set once the iteration ends.

    ``stop()`` (from any thread) ends generation after the current token; closing the iterator early stops it too.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        prompt: str,
        settings: DecodingSettings | None = None,
        *,
        use_chat_template: bool = False,
        system_prompt: str | None = None,
        top_n: int = 10,
        keep_logits: bool = False,
        context_window: int | None = None,
    ):
        self.loaded = loaded
        self.prepared, checked = prepare_generation(
            loaded, prompt, settings or DecodingSettings(), use_chat_template, system_prompt, context_window
        )
        self.settings = checked.settings
        self.notes = list(checked.notes)
        if self.settings.num_beams > 1:
            self.notes.append(
                f"Beam search keeps {self.settings.num_beams} hypotheses and only knows the winner at the end, so it is "
                "not streamed; each token's probability is recomputed from the model once the search finishes."
            )
        self.top_n = int(top_n)
        self.keep_logits = keep_logits
        self.steps: list[StepEvent] = []
        self.result: GenerationResult | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._decoder = TokenDecoder(loaded.tokenizer)
        self._ticket = None  # this run's place in core.common.scheduler.GENERATION_QUEUE
        self.queue_wait_s = 0.0

    @property
    def streamed(self) -> bool:
        return self.settings.num_beams == 1

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join()
        GENERATION_QUEUE.release(self._ticket)  # leaves the line if still waiting (Stop, closed tab); idempotent

    def wait_for_turn(self, poll_s: float = 0.5) -> Iterator[QueueStatus]:
        """Join the model's queue (first come, first served) and yield this run's QueueStatus every ``poll_s``
        seconds while others are ahead; returns once admitted, or at once when stopped (leaving the line)."""
        if self._ticket is None:
            self._ticket = GENERATION_QUEUE.join("generate")
        try:
            while not self._stop.is_set() and not GENERATION_QUEUE.wait(self._ticket, poll_s):
                yield GENERATION_QUEUE.status(self._ticket)
        except QueueLeft:
            self._stop.set()
        if self._stop.is_set():
            GENERATION_QUEUE.release(self._ticket)
        self.queue_wait_s = self._ticket.wait_s

    @property
    def admitted(self) -> bool:
        return self._ticket is not None and self._ticket.state == "running"

    def __iter__(self) -> Iterator[StepEvent]:
        if self.result is not None:
            yield from self.steps
            return
        try:
            if not self.admitted:
                for _ in self.wait_for_turn():
                    pass
            if not self.admitted:  # stopped while waiting: nothing generated
                self._finish(0.0, streamed=self.streamed)
                return
            if self.streamed:
                yield from self._stream()
            else:
                yield from self._beam()
        finally:
            self.close()

    # -- greedy / sampling: streamed from inside generate() ----------------------------------------------------------
    def _processors(self) -> LogitsProcessorList:
        recording = self._recording
        processors = LogitsProcessorList([_StageRecorder(recording, "raw")])
        processors.extend(penalty_processors(self.settings))
        processors.extend(temperature_warpers(self.settings))
        processors.append(_StageRecorder(recording, "temperature"))
        processors.extend(filter_warpers(self.settings))
        processors.append(_StageRecorder(recording, "filtered"))
        return processors

    def _stream_kwargs(self) -> dict[str, Any]:
        """Like generate_kwargs, but the penalty and warpers are ours (in generate()'s order, with recorders)."""
        # generate() adds none of its own penalty or warpers: neutral values here, ours go in logits_processor.
        neutral = replace(self.settings, num_beams=1, repetition_penalty=1.0, temperature=1.0, top_k=0, top_p=1.0,
                          min_p=0.0, typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0, no_repeat_ngram_size=0,
                          temperature_last=False)
        return generate_kwargs(self.loaded, neutral) | {
            "logits_processor": self._processors(),
            "stopping_criteria": StoppingCriteriaList([_StopWhenFlagged(self._stop)]),
            "streamer": self._recording,
        }

    def _run_generate(self, out: queue.Queue, intra_op_threads: int) -> None:
        try:
            # A new thread does not inherit the caller's OpenMP team size; use the caller's, so streaming runs with
            # the same CPU parallelism as a plain generate() called from the caller's thread.
            torch.set_num_threads(intra_op_threads)
            try:  # this thread holds the queue slot the consumer was admitted to; it lets go when generate() ends
                self._started = time.perf_counter()
                self._recording.started = self._started
                torch.manual_seed(self.settings.seed)
                self.loaded.model.generate(**model_inputs(self.loaded, self.prepared), **self._stream_kwargs())
            finally:
                GENERATION_QUEUE.release(self._ticket)
            out.put(("done", None, None, time.perf_counter() - self._started))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consuming thread
            out.put(("error", exc, None, 0.0))

    def _stream(self) -> Iterator[StepEvent]:
        out: queue.Queue = queue.Queue()
        self._started = time.perf_counter()
        self._recording = _Recording(out, self._started, self._stop, self._measure)
        self._thread = threading.Thread(target=self._run_generate, args=(out, torch.get_num_threads()), daemon=True, name="llm-lab-generate")
        self._thread.start()
        total = 0.0
        while True:
            kind, payload, stages, elapsed = out.get()
            if kind == "token":
                event = self._event(len(self.steps), payload, stages, elapsed)  # stages: the measured numbers
                self.steps.append(event)
                yield event
            elif kind == "done":
                total = elapsed
                break
            else:
                raise GenerationError(f"Generation failed: {payload}") from payload
        self._finish(total, streamed=True)

    def _measure(self, token_id: int, stages: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The numbers of one step, as plain Python values. Runs in the generation thread, so every torch op of a
        run stays on one thread (a second thread's OpenMP team would compete with generate() for the cores)."""
        raw_logits = stages["raw"].float()
        raw = torch.softmax(raw_logits, dim=-1)
        adjusted = torch.softmax(stages["temperature"].float(), dim=-1)
        if self.settings.do_sample:
            final_scores = stages["filtered"].float()
            sampled = torch.softmax(final_scores, dim=-1)
            kept = int(torch.isfinite(final_scores).sum())
            sampled_top = top_tokens(sampled, min(self.top_n, kept))
        else:
            sampled, kept, sampled_top = None, 1, [(token_id, 1.0)]
        tops = {"raw": top_tokens(raw, self.top_n), "temperature": top_tokens(adjusted, self.top_n),
                "filtered": sampled_top}
        shown = sorted({token_id, *(i for pairs in tops.values() for i, _ in pairs)})
        shown_ids = torch.tensor(shown)
        sampled_shown = sampled[shown_ids].tolist() if sampled is not None else [float(i == token_id) for i in shown]
        return {
            "tops": tops,
            "stage_probabilities": {
                i: (r, a, f)
                for i, r, a, f in zip(shown, raw[shown_ids].tolist(), adjusted[shown_ids].tolist(), sampled_shown)
            },
            "probability": float(raw[token_id]),
            "adjusted_probability": float(adjusted[token_id]),
            "sampled_probability": float(sampled[token_id]) if sampled is not None else 1.0,
            "raw_rank": int((raw > raw[token_id]).sum()) + 1,
            "kept_tokens": kept,
            "logits": raw_logits.cpu() if self.keep_logits else None,
        }

    def _event(self, index: int, token_id: int, measured: dict[str, Any], elapsed: float) -> StepEvent:
        """Add the token strings (tokenizer work only, no torch) to a measured step."""
        return StepEvent(
            index=index,
            token_id=token_id,
            token=self._decoder.token(token_id),
            text=self._decoder.append(token_id),
            probability=measured["probability"],
            adjusted_probability=measured["adjusted_probability"],
            sampled_probability=measured["sampled_probability"],
            raw_rank=measured["raw_rank"],
            kept_tokens=measured["kept_tokens"],
            alternatives={stage: self._alternatives(pairs) for stage, pairs in measured["tops"].items()},
            time_s=elapsed,
            logits=measured["logits"],
            stage_probabilities=measured["stage_probabilities"],
        )

    def _alternatives(self, pairs: list[tuple[int, float]]) -> list[Alternative]:
        return [Alternative(token_id, self._decoder.token(token_id), prob) for token_id, prob in pairs]

    # -- beam search: plain generate(), probabilities recomputed afterwards --------------------------------------------
    def _beam(self) -> Iterator[StepEvent]:
        self._started = time.perf_counter()
        inputs = model_inputs(self.loaded, self.prepared)
        try:
            torch.manual_seed(self.settings.seed)
            sequences = self.loaded.model.generate(
                **inputs, **generate_kwargs(self.loaded, self.settings),
                stopping_criteria=StoppingCriteriaList([_StopWhenFlagged(self._stop)]),
            )
        finally:
            GENERATION_QUEUE.release(self._ticket)
        elapsed = time.perf_counter() - self._started
        new_ids = new_tokens(self.loaded, self.prepared, sequences)
        if new_ids:
            with torch.no_grad():
                if self.loaded.kind == "encoder-decoder":
                    logits = self.loaded.model(**inputs, decoder_input_ids=sequences[:, :-1]).logits[0]
                else:
                    logits = self.loaded.model(sequences[:, :-1], attention_mask=torch.ones_like(sequences[:, :-1])).logits[0]
                    logits = logits[self.prepared.prompt_tokens - 1:]
            for index, token_id in enumerate(new_ids):
                raw_logits = logits[index].float()
                raw = torch.softmax(raw_logits, dim=-1)
                alternatives = self._alternatives(top_tokens(raw, self.top_n))
                shown = sorted({token_id, *(a.token_id for a in alternatives)})
                event = StepEvent(
                    stage_probabilities={i: (float(raw[i]),) * 3 for i in shown},
                    index=index, token_id=token_id, token=self._decoder.token(token_id),
                    text=self._decoder.append(token_id), probability=float(raw[token_id]),
                    adjusted_probability=float(raw[token_id]), sampled_probability=float(raw[token_id]),
                    raw_rank=int((raw > raw[token_id]).sum()) + 1, kept_tokens=self.settings.num_beams,
                    alternatives={"raw": alternatives, "temperature": alternatives, "filtered": alternatives},
                    time_s=elapsed, logits=raw_logits.cpu() if self.keep_logits else None, streamed=False,
                )
                self.steps.append(event)
                yield event
        self._finish(elapsed, streamed=False)

    def snapshot(self) -> GenerationResult:
        """The finished result, or — if the run was interrupted (stop button, rerun) — a result of the tokens so far
        with stop_reason "stopped"."""
        if self.result is not None:
            return self.result
        self.close()
        if self.result is None:
            self._stop.set()
            self._finish(self.steps[-1].time_s if self.steps else 0.0, streamed=self.streamed)
        return self.result

    def _finish(self, total: float, streamed: bool) -> None:
        ids = [step.token_id for step in self.steps]
        limit_s = request_limits().max_generation_s
        if self._stop.is_set() and len(ids) < self.settings.max_new_tokens and not (ids and ids[-1] in eos_ids(self.loaded)):
            reason = "stopped"
        elif ids and ids[-1] in eos_ids(self.loaded):
            reason = "eos"
        elif len(ids) < self.settings.max_new_tokens and total >= limit_s:
            reason = "time_limit"  # transformers' max_time (the per-request cap) ended it
            self.notes.append(f"Stopped at this server's per-request time limit of {limit_s:g} s "
                              "(LLM_LAB_MAX_GENERATION_S), so everyone sharing it gets a turn.")
        else:
            reason = "max_new_tokens"
        self.result = GenerationResult(
            prompt=self.prepared,
            settings=self.settings,
            steps=self.steps,
            completion=self.loaded.tokenizer.decode(ids, skip_special_tokens=True),
            token_ids=ids,
            stop_reason=reason,
            ttft_s=self.steps[0].time_s if self.steps and streamed else None,
            total_s=total,
            notes=self.notes,
            streamed=streamed,
            queue_wait_s=self.queue_wait_s,
        )


def stream_generation(loaded: LoadedModel, prompt: str, settings: DecodingSettings | None = None, **options) -> GenerationStream:
    """A GenerationStream (validates the input now, starts generating when iterated). Options: use_chat_template,
    system_prompt, top_n, keep_logits, context_window."""
    return GenerationStream(loaded, prompt, settings, **options)


def run_generation(loaded: LoadedModel, prompt: str, settings: DecodingSettings | None = None, **options) -> GenerationResult:
    """Run a stream to the end and return its GenerationResult."""
    stream = stream_generation(loaded, prompt, settings, **options)
    for _ in stream:
        pass
    assert stream.result is not None
    return stream.result


# ---------------------------------------------------------------------------------------------------------------------
# Branching: continue from a chosen prefix of generated tokens


def continue_from(loaded: LoadedModel, prompt: str, prefix_token_ids: list[int], settings: DecodingSettings | None = None,
                  **options) -> GenerationResult:
    """A GenerationResult whose tokens start with exactly ``prefix_token_ids``, then continue under ``settings``.

    The prefix (e.g. a generated text up to step t with another token picked at t) is scored with one forward pass:
    each prefix step gets the model's raw probability and, through the same processors, its probability in the
    distribution the settings would have sampled from (0 when e.g. top-k would have cut it). Generation then runs from
    prompt + prefix with the same settings and seed; max_new_tokens counts the prefix, so branches of one run have
    the same budget. Options as for stream_generation (use_chat_template, system_prompt, top_n, context_window).
    """
    settings = settings or DecodingSettings()
    try:
        prefix = [int(t) for t in (prefix_token_ids or [])]
    except (TypeError, ValueError) as exc:
        raise GenerationInputError("The prefix must be a list of token ids (integers).") from exc
    vocab = int(loaded.model.get_input_embeddings().num_embeddings) if loaded is not None and loaded.model is not None else 0
    if any(not 0 <= t < vocab for t in prefix):
        raise GenerationInputError(f"Token ids of the prefix must lie in [0, {vocab}) for this model's vocabulary.")
    if not prefix:
        return run_generation(loaded, prompt, settings, **options)
    if loaded.kind != "decoder":
        raise GenerationInputError("Branching continues a decoder's own text; this model is not a decoder (causal LM).")
    stream = stream_generation(loaded, prompt, settings, **options)
    if not stream.streamed:
        raise GenerationInputError("Beam search picks its tokens only at the end, so it cannot continue from a chosen "
                                   "token; use greedy decoding or sampling to branch.")
    base, budget = stream.prepared, stream.settings.max_new_tokens
    if len(prefix) > budget:
        raise GenerationInputError(f"The prefix has {len(prefix)} tokens but max new tokens is {budget}.")
    context = torch.cat([base.input_ids, torch.tensor([prefix], dtype=torch.long)], dim=1)
    prefix_steps = _score_prefix(stream, context, base.prompt_tokens)
    remaining = budget - len(prefix)
    ends = prefix[-1] in eos_ids(loaded)
    if remaining > 0 and not ends:
        stream.prepared = replace(base, input_ids=context, max_new_tokens=remaining)
        stream.settings = replace(stream.settings, max_new_tokens=remaining)
        for _ in stream:
            pass
        tail = stream.result
        new_steps, reason, total, notes = tail.steps, tail.stop_reason, tail.total_s, tail.notes
    else:
        new_steps, reason, total, notes = [], "eos" if ends else "max_new_tokens", 0.0, list(stream.notes)
    decoder = TokenDecoder(loaded.tokenizer)
    steps = [replace(step, index=i, text=decoder.append(step.token_id))
             for i, step in enumerate(prefix_steps + list(new_steps))]
    ids = [step.token_id for step in steps]
    return GenerationResult(
        prompt=base, settings=replace(stream.settings, max_new_tokens=budget), steps=steps,
        completion=loaded.tokenizer.decode(ids, skip_special_tokens=True), token_ids=ids, stop_reason=reason,
        ttft_s=new_steps[0].time_s if new_steps else None, total_s=total,
        notes=notes + [f"The first {len(prefix)} token(s) were given (a branch); the rest were generated."],
    )


def _score_prefix(stream: GenerationStream, context: torch.Tensor, prompt_tokens: int) -> list[StepEvent]:
    """StepEvents for given tokens: one forward pass, then each position's logits through the settings' processors."""
    loaded = stream.loaded
    with torch.no_grad():
        logits = loaded.model(context.to(loaded.device), attention_mask=torch.ones_like(context).to(loaded.device)).logits[0]
    steps = []
    for index in range(context.shape[1] - prompt_tokens):
        position = prompt_tokens + index
        token_id = int(context[0, position])
        shaped = shape_distribution(logits[position - 1].float().cpu(), stream.settings, context[:, :position])
        tops = {"raw": top_tokens(shaped.raw, stream.top_n), "temperature": top_tokens(shaped.temperature, stream.top_n),
                "filtered": top_tokens(shaped.filtered, min(stream.top_n, max(1, shaped.kept_count)))}
        shown = sorted({token_id, *(i for pairs in tops.values() for i, _ in pairs)})
        steps.append(StepEvent(
            index=index, token_id=token_id, token=stream._decoder.token(token_id), text="",
            probability=float(shaped.raw[token_id]), adjusted_probability=float(shaped.temperature[token_id]),
            sampled_probability=float(shaped.filtered[token_id]),
            raw_rank=int((shaped.raw > shaped.raw[token_id]).sum()) + 1, kept_tokens=shaped.kept_count,
            alternatives={stage: stream._alternatives(pairs) for stage, pairs in tops.items()}, time_s=0.0,
            streamed=False,
            stage_probabilities={i: (float(shaped.raw[i]), float(shaped.temperature[i]), float(shaped.filtered[i]))
                                 for i in shown},
        ))
    return steps
