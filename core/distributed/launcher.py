"""Start N ranks of core.distributed.worker as separate processes on this machine (gloo on CPU, a rendezvous on a
free loopback port: what torchrun does on one node), follow their progress, and never leave one behind.

All ranks run in one new process group (``start_new_session``); Stop, a failing rank, a timeout or an exception in
the caller (e.g. the page's session ending) kill the whole group (SIGTERM, then SIGKILL).
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from core.common.checks import check_int
from core.distributed.parallel import LAYOUTS, check_layout, is_layout
from core.distributed.strategies import STRATEGIES, StrategyError, check_strategy
from core.common.paths import REPO_ROOT

ROOT = REPO_ROOT
MAX_WORLD_SIZE = 8
POLL_S = 0.2


class DistributedRunError(RuntimeError):
    """A rank failed, the run timed out or was stopped; the message says which and shows the end of its log."""


def check_any_strategy(strategy: str) -> str:
    """A data-parallel strategy (core.distributed.strategies) or a TP/PP layout (core.distributed.parallel)."""
    key = str(strategy).strip().lower()
    if key in LAYOUTS:
        return key
    if key not in STRATEGIES:
        raise StrategyError(f"Unknown strategy {strategy!r}. Known: {', '.join([*STRATEGIES, *LAYOUTS])}.")
    return check_strategy(key)


@dataclass(frozen=True)
class StepSpec:
    """What every rank runs (an architecture: catalog id or config dict)."""

    architecture: object
    strategy: str
    seq_len: int = 32
    batch_size: int = 1
    steps: int = 4
    seed: int = 0
    threads_per_rank: int = 1
    microbatches: int = 1  # pipeline layouts: micro-batches of batch_size sequences per step

    def __post_init__(self) -> None:
        check_any_strategy(self.strategy)
        check_int(self.microbatches, "Micro-batches per step", 1, 64)
        check_int(self.seq_len, "Sequence length", 2, 8192)
        check_int(self.batch_size, "Micro-batch", 1, 1024)
        # steps 1-2 warm up (the first creates the optimizer state, DDP rebuilds its buckets after it), the next is
        # measured, the last counts the bytes sent
        check_int(self.steps, "Steps", 4, 100)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DistributedRun:
    """Every rank's result (core.distributed.worker's JSON) and the wall time."""

    spec: StepSpec
    world_size: int
    ranks: tuple = field(default_factory=tuple)
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), "world_size": self.world_size, "ranks": list(self.ranks),
                "duration_s": self.duration_s}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(spec: StepSpec, nproc_per_node: int, spec_path: str = "spec.json", nnodes: int = 1) -> str:
    """The same step on real GPUs (NCCL): write ``spec.to_dict()`` to spec_path and run this on each node; with
    ``nnodes`` > 1 every node joins one c10d rendezvous at the first node's address (torchrun's multi-node form,
    https://pytorch.org/docs/stable/elastic/run.html)."""
    nodes = ""
    if int(nnodes) > 1:
        nodes = (f"--nnodes {int(nnodes)} --rdzv-backend c10d --rdzv-endpoint $MASTER_ADDR:29500 "
                 "--rdzv-id llm-lab ")
    return (f"torchrun {nodes}--nproc-per-node {int(nproc_per_node)} -m core.distributed.worker "
            f"--spec {shlex.quote(spec_path)} --out results/")


def _kill_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """End every process of the ranks' group: SIGTERM, wait until none is left, SIGKILL what still is."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)  # any process of the group left (a zombie counts until it is reaped)?
            except ProcessLookupError:
                break
            proc.poll()  # reap the launcher shell itself
            time.sleep(0.05)
        else:
            continue
        break
    proc.wait()


def run_distributed_step(spec: StepSpec, world_size: int, *, timeout_s: float = 900.0,
                         stop: threading.Event | None = None,
                         on_progress: Callable[[int, int, int], None] | None = None,
                         python: str | None = None) -> DistributedRun:
    """Run ``spec`` on ``world_size`` ranks here and return their results; DistributedRunError on any failure."""
    world = check_int(world_size, "World size (ranks)", 1, MAX_WORLD_SIZE)
    if is_layout(spec.strategy):
        check_layout(spec.architecture, spec.strategy, world, spec.microbatches)
    port = free_port()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llm-lab-dist-") as tmp:
        tmp_path = Path(tmp)
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps(spec.to_dict()))
        out = tmp_path / "out"
        # One launcher shell in a new session starts every rank, so one killpg ends them all.
        ranks_cmd = " & ".join(
            f"RANK={r} LOCAL_RANK={r} {shlex.quote(python or sys.executable)} -u -m core.distributed.worker "
            f"--spec {shlex.quote(str(spec_path))} --out {shlex.quote(str(out))} > {shlex.quote(str(tmp_path / f'log{r}'))} 2>&1"
            for r in range(world))
        script = f"{ranks_cmd} & wait"
        env = dict(os.environ, WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   OMP_NUM_THREADS=str(spec.threads_per_rank))
        proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env,
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen: dict[int, int] = {}
        try:
            while proc.poll() is None:
                if stop is not None and stop.is_set():
                    raise DistributedRunError("Stopped: every rank was ended.")
                if time.perf_counter() - started > timeout_s:
                    raise DistributedRunError(f"The step did not finish in {timeout_s:.0f} s; every rank was ended.")
                failed = _failed_rank(tmp_path, world)
                if failed is not None:
                    raise DistributedRunError(f"Rank {failed[0]} failed:\n{failed[1]}")
                for r in range(world):
                    step = _progress(tmp_path / f"log{r}")
                    if step and step != seen.get(r) and on_progress is not None:
                        on_progress(r, step, spec.steps)
                    seen[r] = step
                time.sleep(POLL_S)
        finally:
            _kill_group(proc)
        failed = _failed_rank(tmp_path, world)  # a rank that failed just before the others exited
        if failed is not None:
            raise DistributedRunError(f"Rank {failed[0]} failed:\n{failed[1]}")
        results = []
        for r in range(world):
            path = out / f"rank{r}.json"
            if not path.exists():
                log = (tmp_path / f"log{r}").read_text()[-3000:] if (tmp_path / f"log{r}").exists() else ""
                raise DistributedRunError(f"Rank {r} wrote no result:\n{log}")
            results.append(json.loads(path.read_text()))
    return DistributedRun(spec, world, tuple(results), time.perf_counter() - started)


def _progress(log: Path) -> int:
    try:
        lines = [line for line in log.read_text().splitlines() if line.startswith("PROGRESS ")]
    except OSError:
        return 0
    return int(lines[-1].split()[2]) if lines else 0


def _failed_rank(tmp: Path, world: int) -> tuple[int, str] | None:
    for r in range(world):
        log = tmp / f"log{r}"
        try:
            text = log.read_text()
        except OSError:
            continue
        if "Traceback (most recent call last)" in text:
            return r, text[-3000:]
    return None


def run_strategies(architecture, strategies, world_size: int, *, seq_len: int = 32, batch_size: int = 1,
                   steps: int = 4, microbatches: int = 1, stop: threading.Event | None = None,
                   on_progress: Callable[[str, int, int, int], None] | None = None,
                   on_run: Callable[[DistributedRun], None] | None = None,
                   timeout_s: float = 900.0) -> list[DistributedRun]:
    """Each strategy in turn on ``world_size`` ranks, after checking it fits (core.distributed.predict.check_fits:
    DistributedRefused with the prediction), in the process-wide model-work queue (the ranks use every core, and
    the profiler's totals must not see another session's work). ``on_progress(strategy, rank, step, steps)``;
    ``on_run`` gets each finished run."""
    from core.distributed.predict import check_fits
    from core.common.scheduler import GENERATION_QUEUE

    strategies = [check_any_strategy(s) for s in strategies]
    if not strategies:
        raise DistributedRunError("Choose at least one strategy.")
    world = check_int(world_size, "World size (ranks)", 1, MAX_WORLD_SIZE)
    specs = [StepSpec(architecture, s, seq_len=seq_len, batch_size=batch_size, steps=steps,
                      microbatches=microbatches if is_layout(s) else 1) for s in strategies]
    check_fits(architecture, strategies, world, seq_len, batch_size, steps, microbatches=microbatches)
    runs = []
    with GENERATION_QUEUE.admit("distributed", cancel=stop):
        for spec in specs:
            progress = (lambda r, s, n, _name=spec.strategy: on_progress(_name, r, s, n)) if on_progress else None
            run = run_distributed_step(spec, world, timeout_s=timeout_s, stop=stop, on_progress=progress)
            runs.append(run)
            if on_run is not None:
                on_run(run)
    return runs
