"""``python -m core.evaluate --tasks NAME[,NAME…] --variant fp32 --output-path DIR [--log-samples] [--limit N]``:
the bundled (or ``--include-path``) lm-eval tasks on one model variant, written in lm-eval's results JSON shape
(and with ``--log-samples`` each item's per-choice log-likelihoods), for scripts and CI."""
from __future__ import annotations

import argparse
import sys

from core.evaluate.export import write_results
from core.evaluate.suite import pick_tasks, run_tasks
from core.evaluate.task_files import TASK_DIR, load_tasks
from core.evaluate.variants import VARIANTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", required=True, help="comma-separated task names")
    parser.add_argument("--variant", default="fp32",
                        choices=[k for k, v in VARIANTS.items() if v.kind in ("precision", "pruned")])
    parser.add_argument("--output-path", required=True)
    parser.add_argument("--log-samples", action="store_true")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-fewshot", type=int, default=None)
    parser.add_argument("--include-path", default=str(TASK_DIR), help="folder of lm-eval task YAMLs")
    args = parser.parse_args(argv)
    try:
        if args.limit is not None and args.limit < 1:
            raise ValueError("--limit must be at least 1.")
        tasks = pick_tasks([t.strip() for t in args.tasks.split(",") if t.strip()], load_tasks(args.include_path))
        runs = run_tasks(tasks, args.variant, limit=args.limit, batch_size=args.batch_size,
                         num_fewshot=args.num_fewshot,
                         on_progress=lambda name, done, total: print(f"\r{name}: {done}/{total} requests",
                                                                     end="", file=sys.stderr, flush=True))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    for path in write_results(runs, args.output_path, log_samples=args.log_samples,
                              model_name=VARIANTS[args.variant].label, model_args=f"variant={args.variant}"):
        print(path)
    for run in runs:
        print(run.task, "  ".join(f"{m.name} {m.value:.4g} ± {m.stderr:.2g}" for m in run.metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
