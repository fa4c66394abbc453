"""Command line: one layout's plan, or the published runs beside the planner, as JSON on stdout.

    python -m core.plan.parallel --model CONFIG.json|CATALOG_ID --gpu CATALOG_GPU --gpus N --tp T --pp P
        [--interleave V] --global-batch B --micro-batch M --seq-len S [--recompute none|selective|full]
        [--sequence-parallel] [--zero STAGE] [--flash-attention] [--gpus-per-node G] [--token-budget TOKENS]
    python -m core.plan.parallel --published

Bad input: a message on stderr and exit status 2, no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.plan.hardware import get_gpu
from core.plan.parallel.communication import RECOMPUTE_OPTIONS
from core.plan.parallel.layout import Layout, LayoutError, default_cluster, model_shape
from core.plan.parallel.published import published_comparison
from core.plan.parallel.search import evaluate_layout


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.plan.parallel", description=__doc__.split("\n")[0])
    p.add_argument("--published", action="store_true", help="the bundled published runs beside the planner")
    p.add_argument("--model", help="catalog id or a config.json path")
    p.add_argument("--gpu", default="A100 80GB SXM", help="catalog GPU name")
    p.add_argument("--gpus", type=int, help="GPUs in the cluster")
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--pp", type=int, default=1)
    p.add_argument("--interleave", type=int, default=1, help="virtual pipeline stages v")
    p.add_argument("--global-batch", type=int)
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--seq-len", type=int)
    p.add_argument("--recompute", choices=RECOMPUTE_OPTIONS, default="none")
    p.add_argument("--sequence-parallel", action="store_true")
    p.add_argument("--zero", type=int, default=0, choices=(0, 1, 2, 3))
    p.add_argument("--flash-attention", action="store_true",
                   help="attention that never stores the s×s scores (FlashAttention)")
    p.add_argument("--token-budget", type=float, default=None)
    return p


def _model(spec: str):
    path = Path(spec)
    if spec.endswith(".json") or path.is_file():
        try:
            return model_shape(json.loads(path.read_text()))
        except OSError as exc:
            raise LayoutError(f"Cannot read the model config {spec!r}: {exc.strerror}.") from None
        except json.JSONDecodeError as exc:
            raise LayoutError(f"{spec!r} is not valid JSON: {exc.msg} (line {exc.lineno}).") from None
    return model_shape(spec)


def run(argv: list[str]) -> dict | list:
    args = _parser().parse_args(argv)
    if args.published:
        return published_comparison()
    missing = [flag for flag, value in (("--model", args.model), ("--gpus", args.gpus),
                                        ("--global-batch", args.global_batch), ("--seq-len", args.seq_len))
               if value is None]
    if missing:
        raise LayoutError(f"Missing {', '.join(missing)} (or give --published).")
    try:
        gpu = get_gpu(args.gpu)
    except KeyError as exc:
        raise LayoutError(str(exc.args[0])) from None
    model = _model(args.model)
    if args.gpus < 1:
        raise LayoutError(f"--gpus must be ≥ 1, got {args.gpus}.")
    dp, rest = divmod(args.gpus, max(args.tp, 1) * max(args.pp, 1))
    if rest or dp < 1:
        raise LayoutError(f"--gpus {args.gpus} is not a multiple of TP × PP = {args.tp} × {args.pp}: the cluster "
                          "does not match the layout.")
    layout = Layout(args.tp, args.pp, dp, args.zero, args.micro_batch, args.interleave, args.sequence_parallel,
                    args.recompute, args.flash_attention)
    cluster = default_cluster(args.gpu, args.gpus, args.gpus_per_node)
    plan = evaluate_layout(model, gpu, cluster, layout, args.seq_len, args.global_batch, args.token_budget)
    return {"model": model.name, "gpu": gpu.name, **plan.to_dict()}


def main(argv: list[str] | None = None) -> int:
    try:
        out = run(sys.argv[1:] if argv is None else argv)
    except (LayoutError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
