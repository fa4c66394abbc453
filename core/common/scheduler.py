"""Fair turns at the model for many sessions at once: a first-come-first-served admission queue and per-request caps.

One process serves every browser session. On a CPU, two generations at once only slow each other down, and
``generate()`` seeds torch's global random generator, so two interleaved sampling runs would break "same seed, same
sample". Model work therefore runs in *slots* (one on a CPU), handed out strictly in arrival order:

    join() ─▶ waiting (position 1, 2, …) ─▶ running (holds a slot) ─▶ release()

A waiting session can ask, at any time, for its ``QueueStatus``: its place in line, how long it has waited, and an
estimate of the remaining wait (the mean duration of the last runs, shown only once runs have been measured) with
an upper bound from the per-request time cap. A session that leaves while waiting (Stop, a closed tab) calls
``release()``; a waiting ticket whose holder stopped polling for ``stale_after_s`` is dropped, so a vanished session
never holds up the line.

Per-request caps (``request_limits``), set by whoever runs the server in one place, the environment:

    LLM_LAB_MAX_NEW_TOKENS   most new tokens one request may generate (default 512)
    LLM_LAB_MAX_GENERATION_S most seconds one request may run; generation stops there (default 120)

The time cap is enforced by transformers' own ``max_time`` generation argument (``MaxTimeCriteria``,
https://huggingface.co/docs/transformers/main_classes/text_generation#transformers.GenerationConfig.max_time).
Plain Python, no torch: the queue is usable (and tested) on its own.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Mapping

ENV_MAX_NEW_TOKENS = "LLM_LAB_MAX_NEW_TOKENS"
ENV_MAX_GENERATION_S = "LLM_LAB_MAX_GENERATION_S"
DEFAULT_MAX_NEW_TOKENS = 512
DEFAULT_MAX_GENERATION_S = 120.0
# Far beyond any demo, below values that would make the cap meaningless (one request holding the model for a day).
_MAX_NEW_TOKENS_CEILING = 1_000_000
_MAX_GENERATION_S_CEILING = 86_400.0


class QueueLeft(RuntimeError):
    """The ticket left the queue (released, stopped or dropped as stale) before it was admitted."""


@dataclass(frozen=True)
class RequestLimits:
    """Per-request caps that keep a shared server fair; ``notes`` explain any ignored setting."""

    max_new_tokens: int
    max_generation_s: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


def _parse(environ: Mapping[str, str], name: str, default, cast, ceiling, notes: list[str]):
    raw = environ.get(name)
    if raw is None or not str(raw).strip():
        return default
    try:
        value = cast(str(raw).strip())
    except ValueError:
        notes.append(f"{name}={str(raw)[:40]!r} is not a number; using the default {default}.")
        return default
    if not value > 0 or value > ceiling:
        notes.append(f"{name}={value} is outside 0 < value ≤ {ceiling:g}; using the default {default}.")
        return default
    return value


def request_limits(environ: Mapping[str, str] | None = None) -> RequestLimits:
    """The per-request caps from the environment (``LLM_LAB_MAX_NEW_TOKENS``, ``LLM_LAB_MAX_GENERATION_S``).

    Read on every call, so a test (or an operator restarting with new values) sees the current setting. Invalid
    values fall back to the defaults, with a note saying so.
    """
    env = os.environ if environ is None else environ
    notes: list[str] = []
    tokens = _parse(env, ENV_MAX_NEW_TOKENS, DEFAULT_MAX_NEW_TOKENS, int, _MAX_NEW_TOKENS_CEILING, notes)
    seconds = _parse(env, ENV_MAX_GENERATION_S, DEFAULT_MAX_GENERATION_S, float, _MAX_GENERATION_S_CEILING, notes)
    return RequestLimits(int(tokens), float(seconds), tuple(notes))


@dataclass(frozen=True)
class QueueStatus:
    """Where one request stands. ``position`` is 1 for the next in line, 0 once running (or finished)."""

    state: str  # "waiting" | "running" | "done" | "left"
    position: int
    waiting: int  # requests waiting in the whole queue
    running: int  # requests holding a slot
    waited_s: float  # time from joining to admission (or to now, while waiting)
    estimated_wait_s: float | None  # None until runs have been measured
    max_wait_s: float | None  # upper bound from the per-request time cap (None without a cap)
    label: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(eq=False)
class Ticket:
    """One request's place in an AdmissionQueue (compare by identity)."""

    id: int
    label: str
    joined_s: float
    state: str = "waiting"
    admitted_s: float | None = None
    finished_s: float | None = None
    last_seen_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def wait_s(self) -> float:
        """Seconds spent waiting for a slot (so far, while still waiting)."""
        end = self.admitted_s if self.admitted_s is not None else (self.finished_s or time.monotonic())
        return max(0.0, end - self.joined_s)


class AdmissionQueue:
    """First-come-first-served slots for model work, shared by every thread of the process.

    ``slots``: how many requests run at once (1 on a CPU). ``max_service_s``: the per-request time cap, used only
    for the upper bound on a wait (a number, or a function read at each status). ``stale_after_s``: a waiting ticket not polled for this long is dropped.
    """

    def __init__(self, slots: int = 1, *, max_service_s: float | Callable[[], float] | None = None, stale_after_s: float = 30.0,
                 history: int = 20):
        if int(slots) < 1:
            raise ValueError("An admission queue needs at least one slot.")
        self.slots = int(slots)
        self.max_service_s = max_service_s
        self.stale_after_s = float(stale_after_s)
        self._cond = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._running: list[Ticket] = []
        self._durations: deque[float] = deque(maxlen=int(history))
        self._ids = itertools.count(1)

    # -- joining, waiting, leaving ------------------------------------------------------------------------------------
    def join(self, label: str = "") -> Ticket:
        """Take a place at the back of the line (admitted at once when a slot is free and nobody waits)."""
        now = time.monotonic()
        with self._cond:
            ticket = Ticket(next(self._ids), str(label), now, last_seen_s=now)
            self._waiting.append(ticket)
            self._promote(now)
            return ticket

    def wait(self, ticket: Ticket, timeout: float | None = None) -> bool:
        """Block until the ticket holds a slot (True) or ``timeout`` seconds passed (False). Waiting keeps the
        ticket alive; raises QueueLeft if it left the queue (released or dropped as stale)."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        with self._cond:
            while True:
                now = time.monotonic()
                if ticket.state == "waiting":
                    ticket.last_seen_s = now
                self._promote(now)
                if ticket.state in ("running", "done"):
                    return True
                if ticket.state == "left":
                    raise QueueLeft(f"Request {ticket.id} left the queue before its turn.")
                remaining = None if deadline is None else deadline - now
                if remaining is not None and remaining <= 0:
                    return False
                # Wake at least every second to refresh the heartbeat and drop stale tickets ahead.
                self._cond.wait(1.0 if remaining is None else min(remaining, 1.0))

    def release(self, ticket: Ticket | None) -> None:
        """Finish a running ticket (freeing its slot) or take a waiting one out of the line. Idempotent."""
        if ticket is None:
            return
        now = time.monotonic()
        with self._cond:
            if ticket.state == "running":
                self._running.remove(ticket)
                ticket.state, ticket.finished_s = "done", now
                self._durations.append(now - (ticket.admitted_s or now))
            elif ticket.state == "waiting":
                self._waiting.remove(ticket)
                ticket.state, ticket.finished_s = "left", now
            self._promote(now)
            self._cond.notify_all()

    @contextmanager
    def admit(self, label: str = "", cancel: threading.Event | None = None, poll_s: float = 0.5) -> Iterator[Ticket]:
        """``with queue.admit("label"):`` runs the block in a slot, after everyone who came earlier. If ``cancel``
        is set while waiting, the ticket leaves the line and QueueLeft is raised."""
        ticket = self.join(label)
        try:
            while not self.wait(ticket, poll_s):
                if cancel is not None and cancel.is_set():
                    raise QueueLeft(f"Request {ticket.id} was cancelled while waiting.")
            yield ticket
        finally:
            self.release(ticket)

    # -- reading the line ---------------------------------------------------------------------------------------------
    def status(self, ticket: Ticket) -> QueueStatus:
        """The ticket's place in line, its wait so far, and an estimate of the rest."""
        now = time.monotonic()
        with self._cond:
            self._promote(now)
            waiting, running = len(self._waiting), len(self._running)
            if ticket.state != "waiting":
                return QueueStatus(ticket.state, 0, waiting, running, ticket.wait_s, 0.0 if ticket.state == "running" else None,
                                   0.0 if ticket.state == "running" else None, ticket.label)
            position = self._waiting.index(ticket) + 1
            ahead_running = [now - (t.admitted_s or now) for t in self._running]
            estimate = self._estimate(position, ahead_running, self._mean_duration())
            cap = self.max_service_s() if callable(self.max_service_s) else self.max_service_s
            bound = self._estimate(position, ahead_running, cap) if cap else None
            return QueueStatus("waiting", position, waiting, running, now - ticket.joined_s, estimate, bound,
                               ticket.label)

    def snapshot(self) -> dict:
        """Counts for a status line or a test: waiting and running requests, and the runs measured so far."""
        with self._cond:
            self._promote(time.monotonic())
            return {"waiting": len(self._waiting), "running": len(self._running), "slots": self.slots,
                    "measured_runs": len(self._durations), "mean_run_s": self._mean_duration()}

    # -- internals (call with the condition held) ---------------------------------------------------------------------
    def _mean_duration(self) -> float | None:
        return sum(self._durations) / len(self._durations) if self._durations else None

    def _estimate(self, position: int, running_elapsed: list[float], per_run_s: float | None) -> float | None:
        """Wait until a slot frees for the request at ``position``, if each run takes ``per_run_s``: the running
        ones finish (their remaining time), then the ``position − 1`` requests ahead take their turns, ``slots``
        at a time."""
        if per_run_s is None:
            return None
        frees = sorted(max(0.0, per_run_s - e) for e in running_elapsed) + [0.0] * (self.slots - len(running_elapsed))
        for _ in range(position - 1):  # each earlier request takes the earliest free slot
            frees[0] += per_run_s
            frees.sort()
        return frees[0]

    def _promote(self, now: float) -> None:
        changed = False
        for ticket in list(self._waiting):
            if now - ticket.last_seen_s > self.stale_after_s:  # its session vanished without leaving: drop it
                self._waiting.remove(ticket)
                ticket.state, ticket.finished_s = "left", now
                changed = True
        while self._waiting and len(self._running) < self.slots:
            ticket = self._waiting.popleft()
            ticket.state, ticket.admitted_s = "running", now
            self._running.append(ticket)
            changed = True
        if changed:
            self._cond.notify_all()


def _seconds(value: float) -> str:
    """12 s, 2 min 05 s: whole seconds for a person reading a wait."""
    value = max(0.0, float(value))
    if value < 60:
        return f"{value:.0f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes} min {seconds:02d} s"


def describe_wait(status: QueueStatus) -> str:
    """One line (Markdown-free) for a waiting request: its place, its wait so far, and an honest estimate."""
    if status.state != "waiting":
        return f"Your turn: waited {_seconds(status.waited_s)}."
    others = status.position - 1 + status.running
    text = (f"Queued: position {status.position} of {status.waiting} waiting "
            f"({others} request{'s' if others != 1 else ''} ahead of you) · waited {_seconds(status.waited_s)}")
    if status.estimated_wait_s is not None:
        text += (f" · about {_seconds(status.estimated_wait_s)} to go at the recent pace"
                 if status.estimated_wait_s >= 1 else " · any moment now at the recent pace")
    if status.max_wait_s is not None:
        text += f" · at most {_seconds(status.max_wait_s)} (every request is time-capped)"
    return text + "."


def describe_limits(limits: RequestLimits) -> str:
    """The per-request caps, as shown next to the Generate button."""
    return (f"Shared server: requests take turns, first come first served; each may generate at most "
            f"{limits.max_new_tokens:,} new tokens and run at most {_seconds(limits.max_generation_s)} "
            f"(set by whoever runs the server: {ENV_MAX_NEW_TOKENS}, {ENV_MAX_GENERATION_S}).")


# The process-wide line for model work (generation, quantization comparisons): one slot, so runs never interleave.
GENERATION_QUEUE = AdmissionQueue(slots=1, max_service_s=lambda: request_limits().max_generation_s)
