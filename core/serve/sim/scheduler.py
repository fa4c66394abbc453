"""A discrete-event simulation of vLLM V1's scheduler: continuous batching step by step over explicit state
(waiting queue, running list, free KV blocks, prefix-cache blocks), timed by a step model (core.serve.sim.step_model).

The policy (vllm/v1/core/sched/scheduler.py ``Scheduler.schedule`` and vllm/v1/core/kv_cache_manager.py, vLLM
0.32; https://docs.vllm.ai/en/latest/configuration/optimization.html "Chunked Prefill"):

- Each step has a budget of ``max_num_batched_tokens`` tokens. Running requests go first, in order: each asks for
  all its uncomputed tokens (1 when decoding, the rest of its prompt while prefilling), cut to what is left of the
  budget (chunked prefill).
- A running request's new tokens need KV slots: blocks of ``block_size`` tokens are allocated on demand. When none
  are free, the last running request is preempted (recompute: its blocks are freed, its computed tokens reset, it
  goes back to the front of the waiting queue) until the allocation succeeds or the request itself was preempted.
- Only when no request was preempted this step, waiting requests are admitted first come, first served while the
  budget lasts and fewer than ``max_num_seqs`` run; a waiting request first takes its cached prefix (full blocks
  only, at most prompt − 1 tokens, as ``KVCacheManager.get_computed_blocks``) and stops the admission when its
  blocks cannot be allocated.
- A request samples a token in the step that computes its last uncomputed token (so the first token comes with the
  step that finishes the prompt) and finishes after its output length; its blocks are then freed, the shared-prefix
  blocks staying cached until evicted (least recently freed, tail blocks first).

Simplifications: one shared prefix per workload (core.serve.workload's ``prefix_tokens``); blocks of a request's own
tokens are not kept for reuse after a preemption; the engine schedules the next step as soon as one ends (vLLM's CPU
backend runs without async scheduling). Runs of pure decode steps with nothing to admit are priced in one numpy
call, which keeps 10,000 requests within seconds.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from core.serve.sim.step_model import chunk_keys

# vLLM's defaults (vllm/engine/arg_utils.py ``get_batch_defaults``, platforms/cpu.py): the OpenAI server on a CPU
# runs 128 sequences and 2,048 batched tokens with 128-token KV blocks; on a GPU 2,048 tokens (8,192–16,384 on
# large GPUs), 256 sequences (1,024 on large GPUs) and 16-token blocks.
VLLM_CPU_DEFAULTS = {"max_num_seqs": 128, "max_num_batched_tokens": 2048, "block_size_tokens": 128}
VLLM_GPU_DEFAULTS = {"max_num_seqs": 256, "max_num_batched_tokens": 2048, "block_size_tokens": 16}


class SimulationInputError(ValueError):
    """Bad simulation input; the message is user-facing."""


@dataclass(frozen=True)
class EngineConfig:
    """The scheduler settings of one vLLM engine."""

    num_blocks: int
    block_size_tokens: int = 16
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    max_model_len: int | None = None
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True

    def __post_init__(self) -> None:
        for name, low in (("num_blocks", 1), ("block_size_tokens", 1), ("max_num_seqs", 1),
                          ("max_num_batched_tokens", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise SimulationInputError(f"{name} must be a whole number of at least {low}, got {value!r}.")
        if self.max_model_len is not None and (not isinstance(self.max_model_len, (int, np.integer))
                                               or self.max_model_len < 2):
            raise SimulationInputError(f"max_model_len must be a whole number of at least 2, got {self.max_model_len!r}.")

    @property
    def capacity_tokens(self) -> int:
        return self.num_blocks * self.block_size_tokens

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"capacity_tokens": self.capacity_tokens}


@dataclass(eq=False)
class SimRequest:
    """One request's state in the engine (token counts; times in simulated seconds)."""

    index: int
    prompt_tokens: int
    output_tokens: int
    prefix_tokens: int = 0
    send_s: float = 0.0
    arrive_s: float = 0.0
    computed: int = 0
    generated: int = 0
    held_blocks: int = 0
    shared_blocks: int = 0  # leading blocks that are shared prefix-cache blocks
    own_prefix_duplicate: bool = False
    cached_tokens: int = 0
    preemptions: int = 0
    token_times: list = field(default_factory=list)  # floats and numpy arrays, in order
    finish_s: float | None = None

    @property
    def num_tokens(self) -> int:
        return self.prompt_tokens + self.generated

    @property
    def decoding(self) -> bool:
        return self.generated > 0 and self.computed == self.num_tokens - 1


class EngineState:
    """Waiting, running, free blocks and the shared prefix's cached blocks, with vLLM's step functions."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.bs = config.block_size_tokens
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self.free_blocks = config.num_blocks  # includes evictable cached blocks
        self.prefix_ref: list[int] = []  # per shared-prefix block: running requests holding it
        self.prefix_cached: list[bool] = []
        self.evictable = 0  # cached prefix blocks no request holds
        self.preemptions = 0

    # -- KV blocks -------------------------------------------------------------------------------------------
    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.bs)

    def used_blocks(self) -> int:
        return self.config.num_blocks - self.free_blocks

    def _evict(self, n: int) -> None:
        for i in range(len(self.prefix_cached) - 1, -1, -1):
            if n <= 0:
                break
            if self.prefix_cached[i] and self.prefix_ref[i] == 0:
                self.prefix_cached[i] = False
                self.evictable -= 1
                n -= 1

    def allocate(self, r: SimRequest, new_tokens: int) -> bool:
        """Blocks for ``r``'s computed plus ``new_tokens`` tokens; False (nothing changed) when too few are free."""
        need = self.blocks_for(r.computed + new_tokens) - r.held_blocks
        if need <= 0:
            return True
        if need > self.free_blocks:
            return False
        uncached = self.free_blocks - self.evictable
        if need > uncached:
            self._evict(need - uncached)
        self.free_blocks -= need
        r.held_blocks += need
        return True

    def free(self, r: SimRequest) -> None:
        self.free_blocks += r.held_blocks - r.shared_blocks
        for i in range(r.shared_blocks):
            self.prefix_ref[i] -= 1
            if self.prefix_ref[i] == 0:
                self.free_blocks += 1
                self.evictable += 1
        r.held_blocks = r.shared_blocks = 0

    def lookup_prefix(self, r: SimRequest) -> int:
        """Take ``r``'s cached leading prefix blocks (full blocks, at most num_tokens − 1 tokens); tokens hit."""
        if not self.config.enable_prefix_caching or r.prefix_tokens < self.bs:
            return 0
        hits = 0
        for i in range(min(r.prefix_tokens // self.bs, (r.num_tokens - 1) // self.bs, len(self.prefix_cached))):
            if not self.prefix_cached[i]:
                break
            if self.prefix_ref[i] == 0:
                self.evictable -= 1
                self.free_blocks -= 1
            self.prefix_ref[i] += 1
            hits += 1
        r.shared_blocks = r.held_blocks = hits
        r.computed = hits * self.bs
        return r.computed

    def promote_prefix(self, r: SimRequest) -> None:
        """Register ``r``'s newly full shared-prefix blocks in the cache (a block another request already cached
        stays ``r``'s own copy, as vLLM keeps the first block of a hash)."""
        if not self.config.enable_prefix_caching or r.own_prefix_duplicate or r.prefix_tokens < self.bs:
            return
        full = min(r.computed, r.prefix_tokens) // self.bs
        while len(self.prefix_cached) < r.prefix_tokens // self.bs:
            self.prefix_cached.append(False)
            self.prefix_ref.append(0)
        while r.shared_blocks < full:
            i = r.shared_blocks
            if self.prefix_cached[i]:
                r.own_prefix_duplicate = True
                return
            self.prefix_cached[i] = True
            self.prefix_ref[i] = 1
            r.shared_blocks += 1

    # -- one step -----------------------------------------------------------------------------------------------
    def preempt(self, r: SimRequest) -> None:
        self.free(r)
        r.computed = 0
        r.own_prefix_duplicate = False
        r.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(r)

    def schedule(self) -> list[tuple[SimRequest, int]]:
        """One step's batch: (request, new tokens) pairs, running requests first, then waiting ones FCFS."""
        budget = self.config.max_num_batched_tokens
        scheduled: list[tuple[SimRequest, int]] = []
        preempted = False
        i = 0
        while i < len(self.running) and budget > 0:
            r = self.running[i]
            n = min(r.num_tokens - r.computed, budget)
            while not self.allocate(r, n):
                victim = self.running.pop()
                self.preempt(victim)
                preempted = True
                if victim is r:
                    n = 0
                    break
            if n == 0:
                break
            scheduled.append((r, n))
            budget -= n
            i += 1
        if preempted:
            return scheduled
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            r = self.waiting[0]
            if r.computed == 0:
                r.cached_tokens += self.lookup_prefix(r)
            n = r.num_tokens - r.computed
            if not self.config.enable_chunked_prefill and n > budget:
                self._undo_lookup(r)
                break
            n = min(n, budget)
            if not self.allocate(r, n):
                self._undo_lookup(r)
                break
            self.waiting.popleft()
            self.running.append(r)
            scheduled.append((r, n))
            budget -= n
        return scheduled

    def _undo_lookup(self, r: SimRequest) -> None:
        if r.held_blocks and r.computed == r.shared_blocks * self.bs:
            r.cached_tokens -= r.computed
            self.free(r)
            r.computed = 0

    @staticmethod
    def batch_features(scheduled: list[tuple[SimRequest, int]]) -> tuple[int, float, int, int, int]:
        """(prefill tokens, prefill keys, decode sequences, decode context tokens, prefill sequences) of a batch."""
        p, k, d, c, s = 0, 0.0, 0, 0, 0
        for r, n in scheduled:
            if n == 1 and r.decoding:
                d += 1
                c += r.computed
            else:
                p += n
                s += 1
                k += float(chunk_keys(n, r.computed))
        return p, k, d, c, s

    def complete(self, scheduled: list[tuple[SimRequest, int]], end_s: float) -> list[SimRequest]:
        """Apply a finished step at ``end_s``: computed tokens, sampled tokens, finished requests (freed)."""
        done = []
        for r, n in scheduled:
            r.computed += n
            if r.computed >= r.num_tokens:
                r.generated += 1
                r.token_times.append(end_s)
                if r.generated >= r.output_tokens:
                    r.finish_s = end_s
                    done.append(r)
            if r.prefix_tokens:
                self.promote_prefix(r)
        if done:
            finished = set(map(id, done))
            self.running = [r for r in self.running if id(r) not in finished]
            for r in done:
                self.free(r)
        return done

    def decode_run_length(self, next_arrival_s: float) -> int:
        """Steps of pure decoding that can be priced at once from here: every running request decoding, nothing
        that could be admitted, no finish before the last of them, enough free blocks (0: take one normal step)."""
        running = self.running
        if not running or len(running) > self.config.max_num_batched_tokens:
            return 0
        if self.waiting and len(running) < self.config.max_num_seqs:
            return 0
        k = math.inf
        for r in running:
            if not r.decoding:
                return 0
            k = min(k, r.output_tokens - r.generated)
        if k < 2:
            return 0
        k = int(k)
        need = sum(max(0, self.blocks_for(r.computed + k) - r.held_blocks) for r in running)
        return k if need <= self.free_blocks else 0

    def decode_run(self, k: int, start_s: float, next_arrival_s: float, step_model) -> tuple[np.ndarray, np.ndarray,
                                                                                           list[SimRequest]]:
        """Up to ``k`` pure decode steps from ``start_s``, stopping before the first step that starts at or after
        ``next_arrival_s`` (when an arrival could be admitted). Returns (step starts, step seconds, finished)."""
        d = len(self.running)
        c0 = sum(r.computed for r in self.running)
        steps = np.arange(k)
        dt = np.asarray(step_model.step_s(0.0, 0.0, d, c0 + d * steps), dtype=float) * np.ones(k)
        ends = start_s + np.cumsum(dt)
        starts = ends - dt
        if math.isfinite(next_arrival_s) and not (self.waiting and d >= self.config.max_num_seqs):
            k = max(1, int(np.searchsorted(starts, next_arrival_s, side="left")))
            ends, starts, dt = ends[:k], starts[:k], dt[:k]
        done = []
        for r in self.running:
            self.allocate(r, k)
            r.computed += k
            r.generated += k
            r.token_times.append(ends)
            if r.generated >= r.output_tokens:
                r.finish_s = float(ends[-1])
                done.append(r)
        if done:
            finished = set(map(id, done))
            self.running = [r for r in self.running if id(r) not in finished]
            for r in done:
                self.free(r)
        return starts, dt, done
