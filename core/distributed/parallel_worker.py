"""One rank of a tensor-, pipeline- or tensor×pipeline-parallel training step (core.distributed.parallel), run by
core.distributed.worker when the spec's strategy is a layout (``tp``, ``pp_gpipe``, ``pp_1f1b``, ``tp_pp``).

Every rank builds the same random-weight model (same seed) and keeps its part: its TP shard of each layer, its
pipeline stage's layers. All ranks train on the same batch of ``batch_size × microbatches`` sequences (seeded like
rank 0 of a data-parallel run, so one process with that batch is the reference). Measured like the data-parallel
ranks: the peak bytes of one steady-state step (resident bytes counted tensor by tensor plus the step's peak over
them: core.measure.trackers), and in the last step every byte passed to a collective or point-to-point transfer:

- tensor-parallel all-reduces: the profiler's ``_c10d_functional::all_reduce`` records (DTensor's collectives),
  with their tensor shapes (the payload); a ring all-reduce over t ranks sends 2(t−1)/t of it from each rank
  (Patarasuk & Yuan 2009; NCCL's "bus bandwidth" accounting,
  https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md);
- pipeline sends and receives: every ``torch.distributed.P2POp`` the schedule hands to its batched point-to-point
  call (``torch.distributed.pipelining.schedules._batch_p2p``), wrapped for the step.
"""
from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path

FUNCTIONAL = {"_c10d_functional::all_reduce": "all_reduce",
              "_c10d_functional::all_gather_into_tensor": "all_gather",
              "_c10d_functional::reduce_scatter_tensor": "reduce_scatter"}


def tp_collectives(events, tp: int, bytes_per_value: int = 4) -> list[dict]:
    """DTensor's collectives in profiled ``events``: op, kind, payload ``bytes`` and the ring factor 2(t−1)/t."""
    out = []
    for e in events:
        kind = FUNCTIONAL.get(e.name)
        shapes = [s for s in (e.input_shapes or []) if s]
        if kind is None or not shapes or not all(isinstance(d, int) for d in shapes[0]):
            continue
        numel = 1
        for d in shapes[0]:
            numel *= d
        out.append({"op": e.name, "kind": kind, "bytes": numel * bytes_per_value,
                    "volume_factor": 2.0 * (tp - 1) / tp if kind == "all_reduce" else (tp - 1) / tp})
    return out


@contextlib.contextmanager
def counting_p2p(sink: list):
    """Record every point-to-point op the pipeline schedules issue (sends and receives, with their bytes)."""
    import torch.distributed as dist
    from torch.distributed.pipelining import schedules

    original = schedules._batch_p2p

    def counted(p2p_ops, desc=None):
        for op in p2p_ops:
            send = op.op is dist.isend
            sink.append({"op": "isend" if send else "irecv", "kind": "send" if send else "recv",
                         "bytes": op.tensor.numel() * op.tensor.element_size(), "volume_factor": 1.0})
        return original(p2p_ops, desc)

    schedules._batch_p2p = counted
    try:
        yield sink
    finally:
        schedules._batch_p2p = original


def run_parallel_rank(spec: dict, out_dir: Path) -> dict:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForCausalLM

    from core.distributed import parallel
    from core.distributed.rank_result import write_rank_result
    from core.distributed.tensor_bytes import local_bytes, optimizer_state_bytes
    from core.measure.trackers import tracker_for
    from core.plan import architectures

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cuda = torch.cuda.is_available() and spec.get("device", "auto") != "cpu"
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.set_num_threads(max(1, int(spec.get("threads_per_rank", 1))))
    strategy = spec["strategy"]
    microbatches = int(spec.get("microbatches", 1))
    tp, pp = parallel.check_layout(spec["architecture"], strategy, world, microbatches)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    try:
        cfg = architectures.get_config(spec["architecture"])
        steps, seq, micro = int(spec["steps"]), int(spec["seq_len"]), int(spec["batch_size"])
        batch = micro * (microbatches if pp > 1 else 1)
        mesh = init_device_mesh(device.type, (pp, tp), mesh_dim_names=("pp", "tp"))
        stage_index = mesh.get_coordinate()[0]
        torch.manual_seed(int(spec["seed"]))
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(architectures.hf_config(cfg), dtype=torch.float32,
                                                     attn_implementation="sdpa")
        model.train()
        module = model if pp == 1 else parallel.build_stage(model, pp, stage_index)
        del model
        layers = module.model.layers if pp == 1 else module.layers
        if tp > 1:
            parallel.apply_tensor_parallel(layers, mesh["tp"])
        gc.collect()
        optimizer = torch.optim.AdamW(module.parameters(), lr=float(spec.get("lr", 1e-3)), foreach=False)
        schedule, last_stage = None, stage_index == pp - 1
        if pp > 1:
            from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

            h, v = cfg["hidden_size"], cfg["vocab_size"]
            example_in = (torch.zeros(micro, seq, dtype=torch.long, device=device) if stage_index == 0
                          else torch.zeros(micro, seq, h, device=device, requires_grad=True))
            # the example tensors' requires_grad tells the stage which activations carry gradients back
            example_out = torch.zeros(micro, seq, v if last_stage else h, device=device, requires_grad=True)
            stage = PipelineStage(module, stage_index, pp, device, input_args=(example_in,),
                                  output_args=(example_out,), group=mesh.get_group("pp"))
            kind = ScheduleGPipe if strategy == "pp_gpipe" else Schedule1F1B
            schedule = kind(stage, n_microbatches=microbatches, loss_fn=parallel.causal_lm_loss)
        generator = torch.Generator().manual_seed(int(spec["seed"]) * 1000)  # rank 0's data of a DP run
        losses, parts = [], {}

        def step(index: int) -> None:
            ids = torch.randint(0, cfg["vocab_size"], (batch, seq), generator=generator).to(device)
            if schedule is None:
                loss = module(input_ids=ids, labels=ids).loss
                loss.backward()
                value = loss.detach()
            else:
                mb_losses = []
                if stage_index == 0:
                    schedule.step(ids)
                elif last_stage:
                    schedule.step(target=ids, losses=mb_losses)
                else:
                    schedule.step()
                value = torch.stack(mb_losses).mean().detach() if last_stage else torch.zeros((), device=device)
            if index == steps - 2:
                parts.update(parameters=local_bytes(module.parameters()),
                             gradients=local_bytes(p.grad for p in module.parameters()))
            optimizer.step()
            if index == steps - 2:
                parts["optimizer"] = optimizer_state_bytes(optimizer)
            optimizer.zero_grad(set_to_none=True)
            total = value.clone().reshape(())
            dist.all_reduce(total)  # the last stage's ranks (tp of them) hold the loss, the others 0
            losses.append(float(total) / (tp if pp > 1 else world))
            print(f"PROGRESS {rank} {index + 1} {steps}", flush=True)

        tracker = tracker_for(device)
        for index in range(steps - 2):
            step(index)
        gc.collect()
        dist.barrier()
        with tracker.phase() as memory:
            step(steps - 2)
        resident = local_bytes(module.parameters()) + local_bytes(module.buffers()) + parts["optimizer"]
        p2p: list[dict] = []
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof, counting_p2p(p2p):
            step(steps - 1)
        collectives = tp_collectives(prof.events(), tp) + p2p
        identity = {"rank": rank, "world_size": world, "strategy": strategy, "device": device.type,
                    "tp": tp, "pp": pp, "stage": int(stage_index), "tp_rank": int(mesh.get_coordinate()[1]),
                    "microbatches": microbatches}
        return write_rank_result(out_dir, rank, identity, resident, memory, parts, losses, collectives,
                                 tracker.method)
    finally:
        dist.destroy_process_group()
