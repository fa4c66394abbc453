"""Command line of the serving simulator (core.serve.sim): predict a load-test level of an endpoint, or of a model on a
catalog GPU, without sending it.

    python -m core.serve.simulate --base-url URL --model NAME (--concurrency C | --request-rate R [--burstiness B])
        --num-requests N --prompt-tokens P --output-tokens O [--range-ratio r] [--prefix-tokens K] [--seed S]
        [--profile FILE | --profile-only FILE] [--gpu CATALOG_ID]

``--profile-only FILE`` runs the profiling probe (≤ 24 requests) against the endpoint and writes the profile;
``--profile FILE`` predicts from a saved profile and sends no request at all; with neither, the probe runs first.
``--gpu`` simulates the served model (``--model``: a catalog id, or the profile's model) on a catalog GPU with the
planner's roofline and KV pool instead. Prints one JSON object; bad input is a message on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace

from core.plan.serving import KV_BLOCK_TOKENS, ServingInputError
from core.serve.endpoints import EndpointError, custom_endpoint
from core.serve.planner_check import served_model
from core.serve.sim.profile import load_profile, run_probe, save_profile
from core.serve.sim.replay import Traffic, check_workload, replay
from core.serve.sim.scheduler import VLLM_GPU_DEFAULTS, SimulationInputError
from core.serve.sim.catalog import catalog_engine

KEYS = ("ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "tpot_p90_s", "itl_p50_s", "e2e_p50_s", "output_tokens_per_s",
        "requests_per_s")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 2 with a plain sentence, as argparse does, without the usage block twice
        sys.stderr.write(f"simulate: {message}\n")
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core.serve.simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", help="the server's /v1 base, as in LLM_LAB_ENDPOINTS")
    p.add_argument("--model", help="served model name (or, with --gpu, a catalog model id)")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int, help="closed loop: requests in flight")
    load.add_argument("--request-rate", type=float, help="open loop: requests/s")
    p.add_argument("--burstiness", type=float, default=1.0, help="gamma shape of the gaps (1 = Poisson)")
    p.add_argument("--max-concurrency", type=int, help="open loop: cap on requests in flight")
    p.add_argument("--num-requests", type=int)
    p.add_argument("--prompt-tokens", type=int)
    p.add_argument("--output-tokens", type=int)
    p.add_argument("--range-ratio", type=float, default=0.0)
    p.add_argument("--prefix-tokens", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="the load test's workload seed")
    p.add_argument("--level", type=int, default=0, help="the load test's level index (which draw of the seed)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--profile", help="predict from this saved profile; sends no request")
    src.add_argument("--profile-only", help="run the probe, write the profile here, predict nothing")
    p.add_argument("--gpu", help="simulate a catalog GPU (roofline step times, the planner's KV pool)")
    p.add_argument("--max-num-seqs", type=int)
    p.add_argument("--max-num-batched-tokens", type=int)
    p.add_argument("--num-blocks", type=int)
    p.add_argument("--block-size", type=int)
    return p


def _need(args, *names) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise SimulationInputError(f"Missing {', '.join(missing)}.")


def _endpoint(args):
    _need(args, "base_url", "model")
    try:
        return custom_endpoint(args.base_url, args.model)
    except (ValueError, EndpointError) as exc:
        raise SimulationInputError(str(exc)) from None


def _overrides(args) -> dict:
    return {"max_num_seqs": args.max_num_seqs, "max_num_batched_tokens": args.max_num_batched_tokens,
            "num_blocks": args.num_blocks, "block_size_tokens": args.block_size}


def _gpu_setup(args, profile):
    model = args.model if profile is None or profile.served_model is None else profile.served_model
    if model is None:
        raise SimulationInputError("--gpu needs --model (a catalog model id) or a --profile that names one.")
    limits = {"max_num_seqs": args.max_num_seqs or VLLM_GPU_DEFAULTS["max_num_seqs"],
              "max_batched_tokens": args.max_num_batched_tokens or VLLM_GPU_DEFAULTS["max_num_batched_tokens"]}
    step_model, config = catalog_engine(model, args.gpu, block_size_tokens=args.block_size or KV_BLOCK_TOKENS,
                                        **limits)
    if args.num_blocks:
        config = replace(config, num_blocks=args.num_blocks)
    return step_model, config


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.profile_only:
            endpoint = _endpoint(args)
            profile = run_probe(endpoint, served_model=_served(endpoint))
            save_profile(profile, args.profile_only)
            print(json.dumps({"profile": args.profile_only, "step_model": profile.step_model.to_dict(),
                              "engine": profile.engine, "residual_rms_pct": profile.residual_rms_pct,
                              "probe_seconds": profile.probe_seconds}))
            return 0
        _need(args, "num_requests", "prompt_tokens", "output_tokens")
        if args.concurrency is None and args.request_rate is None:
            raise SimulationInputError("Give --concurrency (closed loop) or --request-rate (open loop).")
        spec = check_workload(args.prompt_tokens, args.output_tokens, args.range_ratio, args.prefix_tokens, args.seed)
        traffic = Traffic(args.concurrency, args.request_rate, args.burstiness,
                          args.max_concurrency if args.request_rate is not None else None)
        profile = load_profile(args.profile) if args.profile else None
        if args.gpu:
            step_model, config = _gpu_setup(args, profile)
        else:
            if profile is None:
                endpoint = _endpoint(args)
                profile = run_probe(endpoint, served_model=_served(endpoint))
            step_model, config = profile.step_model, profile.engine_config(**_overrides(args))
        result = replay(spec, args.num_requests, traffic, config, step_model, level=args.level, timeline=False)
    except (SimulationInputError, ServingInputError, EndpointError, ValueError) as exc:
        sys.stderr.write(f"simulate: {exc}\n")
        return 2
    row = result.row
    out = {k: _clean(row[k]) for k in KEYS}
    out |= {k: _clean(row[k]) for k in row if k.endswith(("_p99_s", "_mean_s")) or k in ("duration_s", "preemptions")}
    out |= {"steps": result.simulation.steps, "engine": config.to_dict(), "step_model": step_model.to_dict(),
            "traffic": traffic.to_dict(), "workload": spec.to_dict(), "level": args.level}
    print(json.dumps(out))
    return 0


def _served(endpoint):
    try:
        return served_model(endpoint)
    except EndpointError:
        return None


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


if __name__ == "__main__":
    raise SystemExit(main())
