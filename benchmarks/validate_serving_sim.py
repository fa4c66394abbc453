"""The serving simulator against the real server: for each point, the load test measures one level, then the simulator
predicts that same level (same seed, lengths, arrivals) from a profile fitted by the probe alone; optionally
``vllm bench serve`` measures the same workload right after. Writes one JSON line per point and a Markdown table.

    python benchmarks/validate_serving_sim.py --base-url http://127.0.0.1:PORT/v1 --profile profile.json \
        --out results.jsonl [--bench] [--saturation]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.serve.endpoints import custom_endpoint  # noqa: E402
from core.serve.load_test import run_load_test_detailed, run_rate_sweep  # noqa: E402
from core.serve.saturation import find_saturation  # noqa: E402
from core.serve.sim.profile import load_profile  # noqa: E402
from core.serve.sim.replay import Traffic, replay, simulated_saturation  # noqa: E402
from core.serve.slo import SLO  # noqa: E402
from core.serve.workload import WorkloadSpec  # noqa: E402

KEYS = ("ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "tpot_p90_s", "output_tokens_per_s")


def point(endpoint, profile, prompt, output, traffic: Traffic, n: int, seed: int, bench: bool) -> dict:
    started = time.time()
    if traffic.concurrency is not None:
        run = run_load_test_detailed(endpoint, [traffic.concurrency], n, prompt, output, seed=seed)
    else:
        run = run_rate_sweep(endpoint, [traffic.request_rate], n, prompt, output, seed=seed,
                             burstiness=traffic.burstiness)
    measured = run.rows[0]
    spec = WorkloadSpec(prompt, output, 0.0, 0, seed)
    predicted = replay(spec, n, traffic, profile.engine_config(), profile.step_model, level=0, timeline=False).row
    out = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"), "prompt_tokens": prompt,
           "output_tokens": output, "traffic": traffic.label, "requests": n, "seed": seed,
           "errors": measured["errors"], "wall_s": time.time() - started}
    for k in KEYS:
        out[f"measured_{k}"] = measured[k]
        out[f"predicted_{k}"] = predicted[k]
        out[f"error_{k}_pct"] = (predicted[k] - measured[k]) / measured[k] * 100 if measured[k] else None
    if bench:
        from core.run.models import ensure_bundled_decoder
        from core.serve.vllm_bench import run_vllm_bench
        options = ({"max_concurrency": traffic.concurrency} if traffic.concurrency is not None
                   else {"request_rate": traffic.request_rate})
        b = run_vllm_bench(endpoint, str(ensure_bundled_decoder()), prompt, output, n, seed=seed + 500_000, **options)
        out["bench_ttft_p50_s"] = b.median_ttft_ms / 1e3
        out["bench_tpot_p50_s"] = b.median_tpot_ms / 1e3
    return out


def table(path) -> str:
    """The README's Markdown table of a results file: predicted / measured (error) per point."""
    lines = ["| prompt | load | TTFT p50 (s) | TTFT p90 (s) | TPOT p50 (ms) | TPOT p90 (ms) | bench serve TTFT p50 / TPOT p50 | date (UTC) |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    sat = []
    for line in Path(path).read_text().splitlines():
        d = json.loads(line)
        if d.get("saturation"):
            sat.append(d)
            continue

        def cell(k, scale=1.0, fmt=".2f"):
            return (f"{d['predicted_' + k] * scale:{fmt}} / {d['measured_' + k] * scale:{fmt}} "
                    f"({d['error_' + k + '_pct']:+.0f} %)")
        bench = (f"{d['bench_ttft_p50_s']:.2f} s / {d['bench_tpot_p50_s'] * 1e3:.0f} ms"
                 if d.get("bench_ttft_p50_s") is not None else "–")
        lines.append(f"| {d['prompt_tokens']} | {d['traffic']} | {cell('ttft_p50_s')} | {cell('ttft_p90_s')} | "
                     f"{cell('tpot_p50_s', 1e3, '.0f')} | {cell('tpot_p90_s', 1e3, '.0f')} | {bench} | {d['date']} |")
    for d in sat:
        lines.append("")
        lines.append(f"Saturation at 128-token prompts, SLO p90 TTFT ≤ {d['slo']['ttft_s']} s and TPOT ≤ "
                     f"{d['slo']['tpot_s']} s ({d['date']}): predicted {d['predicted']['saturation_rate']} req/s, "
                     f"measured {d['measured']['saturation_rate']} req/s (probes measured "
                     f"{[(p['request_rate'], p['within_slo']) for p in d['measured']['probes']]}, predicted "
                     f"{[(round(p['request_rate'], 3), p['within_slo']) for p in d['predicted']['probes']]}).")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--profile", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--bench", action="store_true")
    p.add_argument("--saturation", action="store_true")
    p.add_argument("--prompts", default="128,512")
    p.add_argument("--concurrency", default="1,2,4,8")
    p.add_argument("--rates", default="0.25,0.5,1,2")
    p.add_argument("--closed-requests", type=int, default=16)
    p.add_argument("--open-requests", type=int, default=12)
    p.add_argument("--seed-base", type=int, default=31_000, help="first seed (a new one per run: vLLM caches prompts)")
    p.add_argument("--reprobe", action="store_true", help="run the profiling probe again before each prompt size "
                   "(a loaded machine drifts; the probe's own requests, never the points')")
    p.add_argument("--table", action="store_true", help="print the Markdown table of --out and exit")
    a = p.parse_args()
    if a.table:
        print(table(a.out))
        return 0
    endpoint = custom_endpoint(a.base_url, "smollm2")
    profile = None if a.reprobe else load_profile(a.profile)
    out = Path(a.out)
    seed = a.seed_base
    for prompt in [int(x) for x in a.prompts.split(",")]:
        if a.reprobe:
            from core.serve.sim.profile import run_probe, save_profile
            profile = run_probe(endpoint)
            save_profile(profile, f"{a.profile}.{prompt}.json")
            print(json.dumps({"profile_for": prompt, "step_model": profile.step_model.to_dict(),
                              "residual_rms_pct": profile.residual_rms_pct}), flush=True)
        plan = [Traffic(concurrency=int(c)) for c in a.concurrency.split(",") if c]
        plan += [Traffic(request_rate=float(r)) for r in a.rates.split(",") if r]
        for traffic in plan:
            seed += 1
            n = a.closed_requests if traffic.concurrency is not None else a.open_requests
            row = point(endpoint, profile, prompt, 32, traffic, n, seed, a.bench)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    if a.saturation:
        slo = SLO(ttft_s=1.5, tpot_s=0.15)
        spec_seed = seed + 1
        result, _ = find_saturation(endpoint, slo, 12, 128, 32, start_rate=1.0, max_rate=16.0, refine_steps=2,
                                    seed=spec_seed)
        if a.reprobe:
            from core.serve.sim.profile import run_probe
            profile = run_probe(endpoint)
        sim = simulated_saturation(WorkloadSpec(128, 32, 0.0, 0, spec_seed), 12, profile.engine_config(),
                                   profile.step_model, slo, start_rate=1.0, max_rate=16.0, refine_steps=2)
        row = {"saturation": True, "slo": slo.to_dict(), "measured": result.to_dict(), "predicted": sim.to_dict(),
               "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
