"""One rank of a distributed training step. Run by core.distributed.launcher here (gloo on CPU), or on GPUs with

    torchrun --nproc-per-node N -m core.distributed.worker --spec spec.json --out results/

(NCCL on CUDA; rank and rendezvous from torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

Each rank builds the same random-weight model (same seed), wraps it for the strategy, and runs ``steps`` training
steps (AdamW, fp32) on its own micro-batch of random tokens (seeded by rank: data parallel). It measures

- the peak bytes of live tensors in one steady-state step (after two warm-up steps): the bytes resident between
  steps, counted tensor by tensor, plus the step's peak over them (CPU: the profiler's allocation log,
  core.measure.trackers; CUDA: max_memory_allocated), and the local bytes of parameters, gradients and optimizer
  state at the end of the measured backward;
- every collective of the last step from the profiler's c10d records (c10d::allreduce_, _allgather_base_,
  _reduce_scatter_base_, broadcast_ …, with their tensor sizes), so DDP's C++ reducer is counted too;
- the loss of every step, averaged over ranks.

It prints ``PROGRESS <rank> <step> <steps>`` lines and writes ``rank<r>.json``.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

from core.distributed.rank_result import write_rank_result
from core.distributed.tensor_bytes import local_bytes, optimizer_state_bytes

# c10d operator → (ZeRO §7 volume factor, whose size counts): an all-reduce moves its tensor twice (reduce-scatter +
# all-gather), the others once; all-gathers count their full output, reduce-scatters their full input.
COLLECTIVES = {
    "c10d::allreduce_": ("all_reduce", 2.0, "input"),
    "c10d::allreduce_coalesced_": ("all_reduce", 2.0, "input"),
    "c10d::_allgather_base_": ("all_gather", 1.0, "output"),
    "c10d::allgather_": ("all_gather", 1.0, "output"),
    "c10d::allgather_into_tensor_coalesced_": ("all_gather", 1.0, "output"),
    "c10d::_reduce_scatter_base_": ("reduce_scatter", 1.0, "input"),
    "c10d::reduce_scatter_": ("reduce_scatter", 1.0, "input"),
    "c10d::reduce_scatter_tensor_coalesced_": ("reduce_scatter", 1.0, "input"),
    "c10d::broadcast_": ("broadcast", 1.0, "input"),
}
BYTES_PER_VALUE = 4  # fp32 training: every communicated tensor is fp32


def _numel(dims) -> int:
    total = 0
    for shape in dims if isinstance(dims, list) else []:
        if isinstance(shape, list) and shape and all(isinstance(d, int) for d in shape):
            n = 1
            for d in shape:
                n *= d
            total += n
        elif isinstance(shape, list) and shape and isinstance(shape[0], list):
            total += _numel(shape)
    return total


def collectives_from_events(events) -> list[dict]:
    """Collectives of a profiled region (torch.profiler function events with record_shapes): op, kind, bytes.

    FSDP2's c10d calls carry their tensor shapes (``c10d::_allgather_base_``, ``c10d::_reduce_scatter_base_``). Calls
    that pass tensor lists (``c10d::broadcast_``, ``c10d::allreduce_``) are recorded without shapes; broadcasts are
    then read from the backend's own event (``gloo:broadcast`` / ``nccl:broadcast``), and DDP's gradient all-reduces
    from its communication hook (``count_ddp_allreduce``) instead. Gloo carries out a reduce-scatter as an all-reduce
    of the full tensor (its ``gloo:all_reduce`` events): the logical collective is what is counted here.
    """
    out = []
    for e in events:
        name = e.name
        shapes = [s for s in (e.input_shapes or []) if s]
        if name in COLLECTIVES and shapes:
            kind, factor, which = COLLECTIVES[name]
            arg = shapes[1] if kind == "reduce_scatter" and len(shapes) > 1 else shapes[0]
        elif name.endswith(":broadcast") and not name.startswith("c10d") and shapes:
            kind, factor, arg = "broadcast", 1.0, shapes[0]
        else:
            continue
        numel = _numel([arg]) if arg and isinstance(arg[0], int) else _numel(arg)
        out.append({"op": name, "kind": kind, "bytes": numel * BYTES_PER_VALUE, "volume_factor": factor})
    return out


def count_ddp_allreduce(model, sink: list) -> None:
    """Register a DDP communication hook (DistributedDataParallel.register_comm_hook) that all-reduces each gradient
    bucket as DDP's default does (torch.distributed.algorithms.ddp_comm_hooks.default_hooks.allreduce_hook) and
    appends its size to ``sink``."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    def hook(state, bucket):
        buffer = bucket.buffer()
        sink.append({"op": "ddp bucket all-reduce", "kind": "all_reduce",
                     "bytes": buffer.numel() * buffer.element_size(), "volume_factor": 2.0})
        return allreduce_hook(state, bucket)

    model.register_comm_hook(None, hook)


def collective_release_hints(events):
    """When a collective's buffer that a gloo worker thread frees (no free in the profiler's log) is let go:

    - a buffer allocated inside a ``c10d::`` op (gloo's own copy, e.g. the clone its reduce-scatter all-reduces):
      when the FSDP step that issued it ends (FSDP2 waits for its reduce-scatter there);
    - the output of ``FSDP::all_gather (unit)``: when the next ``FSDP::all_gather_copy_out (unit)`` ends (FSDP2
      copies it into the unsharded parameters, then drops it).
    Anything else: unknown (None).
    """
    copy_outs: dict[str, list[int]] = {}
    for e in events:
        if e.name.startswith("FSDP::all_gather_copy_out"):
            copy_outs.setdefault(e.name.split("copy_out", 1)[1], []).append(e.end_time_ns)
    for ends in copy_outs.values():
        ends.sort()

    def hint(allocation):
        parent = allocation.parent
        inside_c10d = False
        while parent is not None:
            if parent.name.startswith("c10d::"):
                inside_c10d = True
            elif parent.name.startswith("FSDP::"):
                if inside_c10d:
                    return parent.end_time_ns
                if parent.name.startswith("FSDP::all_gather ") or parent.name == "FSDP::all_gather":
                    unit = parent.name[len("FSDP::all_gather"):]
                    later = [t for t in copy_outs.get(unit, []) if t > allocation.start_time_ns]
                    return later[0] if later else None
                return None
            parent = parent.parent
        return None

    return hint


def run_rank(spec: dict, out_dir: Path) -> dict:
    from core.distributed.parallel import is_layout

    if is_layout(spec["strategy"]):  # tensor / pipeline parallel: core.distributed.parallel_worker
        from core.distributed.parallel_worker import run_parallel_rank

        return run_parallel_rank(spec, out_dir)
    import torch
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM
    from torch.profiler import ProfilerActivity, profile

    from core.plan import architectures
    from core.distributed.strategies import wrap
    from core.measure.trackers import tracker_for

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cuda = torch.cuda.is_available() and spec.get("device", "auto") != "cpu"
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.set_num_threads(max(1, int(spec.get("threads_per_rank", 1))))
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    try:
        cfg = architectures.get_config(spec["architecture"])
        steps, seq, batch = int(spec["steps"]), int(spec["seq_len"]), int(spec["batch_size"])
        losses, collectives, parts = [], [], {}
        tracker = tracker_for(device)
        generator = torch.Generator().manual_seed(int(spec["seed"]) * 1000 + rank)

        def step(index: int) -> None:
            ids = torch.randint(0, cfg["vocab_size"], (batch, seq), generator=generator).to(device)
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            if index == steps - 2:  # the last measured step: what each rank holds at the end of backward
                parts.update(parameters=local_bytes(model.parameters()),
                             gradients=local_bytes(p.grad for p in model.parameters()))
            optimizer.step()
            if index == steps - 2:
                parts["optimizer"] = optimizer_state_bytes(optimizer)
            optimizer.zero_grad(set_to_none=True)
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            losses.append(float(mean) / world)
            print(f"PROGRESS {rank} {index + 1} {steps}", flush=True)

        # Memory: the bytes resident between steps plus the peak of one steady-state step over them (the first
        # step creates the optimizer state); communication: the last step alone (two profilers cannot nest).
        # The resident bytes are counted tensor by tensor (local parameter shards, buffers, optimizer state, DDP's
        # gradient buckets) rather than read off the profiler: the CPU allocator's running total only goes down for
        # frees on a profiled thread, and gloo's worker threads drop the last reference to some collective buffers,
        # which would leave a phantom FSDP unit or two in the total on some ranks.
        torch.manual_seed(int(spec["seed"]))
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(architectures.hf_config(cfg), dtype=torch.float32,
                                                     attn_implementation="sdpa")
        model.train()
        model, optimizer = wrap(model, spec["strategy"], lr=float(spec.get("lr", 1e-3)))
        bucket_sizes: list[dict] = []
        if hasattr(model, "register_comm_hook"):
            count_ddp_allreduce(model, bucket_sizes)
        for index in range(steps - 2):
            step(index)
        bucket_sizes.clear()
        gc.collect()
        dist.barrier()  # quiescent: every rank between steps
        with tracker.phase(release_hints=collective_release_hints) as memory:
            step(steps - 2)
        buckets = sum(b["bytes"] for b in bucket_sizes)  # DDP's flat gradient buffers, alive from construction on
        resident = (local_bytes(model.parameters()) + local_bytes(model.buffers()) + parts["optimizer"] + buckets)
        parts["gradient_buckets"] = buckets
        bucket_sizes.clear()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            step(steps - 1)
        collectives = collectives_from_events(prof.events()) + bucket_sizes
        identity = {"rank": rank, "world_size": world, "strategy": spec["strategy"], "device": device.type}
        return write_rank_result(out_dir, rank, identity, resident, memory, parts, losses, collectives,
                                 tracker.method)
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One rank of an LLM Lab distributed training step.")
    parser.add_argument("--spec", required=True, help="JSON file: architecture, strategy, seq_len, batch_size, seed, steps")
    parser.add_argument("--out", required=True, help="folder for rank<r>.json")
    args = parser.parse_args(argv)
    run_rank(json.loads(Path(args.spec).read_text()), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
