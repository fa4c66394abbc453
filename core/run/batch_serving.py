"""Serving concurrent sessions together on a GPU: transformers' continuous batching.

On a GPU, one decode step of a small model leaves most of the chip idle, so requests from several sessions are
served together: transformers' ``ContinuousBatchingManager`` (``model.init_continuous_batching()``,
https://huggingface.co/docs/transformers/main/en/continuous_batching) keeps a paged KV cache and, at every step,
adds waiting requests to the running batch and retires finished ones (continuous or "in-flight" batching, Yu et al.
2022, *Orca*, OSDI '22, §4). One manager per loaded model runs in its own thread; ``ContinuousBatchServer.generate``
hands a request over and blocks until its tokens are back, so any number of sessions can call it at once.

Only on CUDA (``batching_available``). On a CPU the sessions stay serial behind ``core.common.scheduler``'s queue, by
measurement (benchmarks/bench_concurrency.py, README): the continuous-batching loop on 2 CPU cores was no faster in
aggregate than one request at a time (a static padded batch was faster, but only for sessions that arrive together,
and it gives up per-session seeds), and the instrumented Generate page records each token's distributions
inside ``generate()``'s own logits pipeline, which a shared batch does not expose per request. Greedy only: a
shared batch has one random generator, so per-session seeds (same seed, same sample) cannot hold there.
"""
from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from dataclasses import asdict, dataclass

from core.common.scheduler import request_limits


def batching_available(loaded) -> tuple[bool, str]:
    """(True, "") when concurrent requests to this model can share a continuous batch, else (False, the reason)."""
    import torch

    if loaded is None or getattr(loaded, "model", None) is None:
        return False, "No model is loaded."
    if loaded.kind != "decoder":
        return False, "Continuous batching serves decoder (causal LM) models."
    if loaded.device.type != "cuda" or not torch.cuda.is_available():
        return False, ("Continuous batching runs on a CUDA GPU; on a CPU requests take turns (continuous batching "
                       "measured no faster there).")
    if getattr(loaded, "quantization", None):
        return False, "Continuous batching is not used for bitsandbytes-quantized models."
    return True, ""


@dataclass(frozen=True)
class BatchedResult:
    """One request served in a continuous batch: its new tokens and timings (seconds)."""

    token_ids: list[int]
    queue_wait_s: float  # from submission until the batch started its prefill
    total_s: float  # from submission until its last token
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class ContinuousBatchServer:
    """A running continuous-batching manager for one model, shared by every session of the process."""

    def __init__(self, loaded, max_new_tokens: int | None = None, *, require_cuda: bool = True):
        """``require_cuda=False`` only for measuring the CPU case (benchmarks/bench_concurrency.py)."""
        from transformers import GenerationConfig

        ok, reason = batching_available(loaded)
        if not ok and (require_cuda or loaded.kind != "decoder"):
            raise RuntimeError(reason)
        self.loaded = loaded
        tokenizer = loaded.tokenizer
        eos = getattr(loaded.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self.max_new_tokens = int(max_new_tokens or request_limits().max_new_tokens)
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False,
                                  eos_token_id=eos if eos is not None else -1,
                                  pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos)
        self.manager = loaded.model.init_continuous_batching(generation_config=config)
        self.manager.start()
        self._ids = itertools.count()
        self._inboxes: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._router = threading.Thread(target=self._route, daemon=True, name="llm-lab-batch-router")
        self._router.start()

    def _route(self) -> None:
        """Hand each finished output to the session waiting for it (the manager has one shared output queue)."""
        while not self._closed.is_set():
            try:
                output = self.manager.get_result(timeout=0.2)
                if output is None or not output.is_finished():
                    continue
                with self._lock:
                    inbox = self._inboxes.get(output.request_id)
                if inbox is not None:
                    inbox.put(output)
            except Exception as exc:  # noqa: BLE001 - the router must survive: fail who waits, keep routing
                with self._lock:
                    waiting = list(self._inboxes.values())
                for box in waiting:
                    box.put(exc)
                self._closed.wait(0.2)  # no busy loop if the manager keeps failing

    def generate(self, input_ids: list[int], max_new_tokens: int, timeout_s: float | None = None,
                 ignore_eos: bool = False) -> BatchedResult:
        """Greedy continuation of ``input_ids`` (at most ``max_new_tokens`` new tokens), batched with whatever
        other sessions are generating. Stops at ``timeout_s`` (default: the per-request time cap); ``ignore_eos``
        generates exactly ``max_new_tokens`` (equal work for a benchmark)."""
        limit_s = float(timeout_s if timeout_s is not None else request_limits().max_generation_s)
        request_id = f"llm-lab-{next(self._ids)}"
        inbox: queue.Queue = queue.Queue()
        with self._lock:
            self._inboxes[request_id] = inbox
        submitted = time.perf_counter()
        try:
            self.manager.add_request(list(map(int, input_ids)), request_id=request_id,
                                     max_new_tokens=min(int(max_new_tokens), self.max_new_tokens),
                                     **({"eos_token_id": -1} if ignore_eos else {}))
            try:
                output = inbox.get(timeout=limit_s)
            except queue.Empty:
                self.manager.cancel_request(request_id)
                return BatchedResult([], 0.0, time.perf_counter() - submitted,
                                     f"stopped at the per-request time limit of {limit_s:g} s")
        finally:
            with self._lock:
                self._inboxes.pop(request_id, None)
        if isinstance(output, Exception):  # the router could not read the manager's results
            with contextlib.suppress(Exception):
                self.manager.cancel_request(request_id)
            return BatchedResult([], 0.0, time.perf_counter() - submitted,
                                 f"continuous batching failed: {type(output).__name__}: {output}")
        started = output.lifespan[0] if output.lifespan[0] > 0 else submitted
        return BatchedResult(list(output.generated_tokens), max(0.0, started - output.created_time),
                             time.perf_counter() - submitted, output.error)

    def close(self) -> None:
        self._closed.set()
        self.manager.stop(block=True, timeout=10)
        self._router.join(5)


_SERVERS: dict[int, ContinuousBatchServer] = {}
_SERVERS_LOCK = threading.Lock()


def batch_server(loaded) -> ContinuousBatchServer:
    """The process's continuous-batching server for this loaded model (started on first use)."""
    with _SERVERS_LOCK:
        server = _SERVERS.get(id(loaded.model))
        if server is None:
            server = _SERVERS[id(loaded.model)] = ContinuousBatchServer(loaded)
        return server
