"""Issue 10: the CPU training (and bf16 prefill) prediction holds on other CPUs' code paths. PyTorch and oneDNN can be made to run a
lower instruction set than this CPU has (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA) and fewer threads; each setting
runs in a fresh process, since both are read once at start-up.

Each setting caps both libraries at the same level, as a real older CPU would: ATen without AVX-512 beside oneDNN
still allowed AMX is a mix no CPU has, and PyTorch 2.13's CPU flash attention fails on it in bf16 ("pack_vnni2 is
only supported when avx512 is supported": oneDNN asks for AMX's packed layout, ATen's DEFAULT build has no packer)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, torch
from core import measure
from tests.measure.test_measure import TINY
out = {"kernels": measure.cpu_kernels()}
CASES = (("gpt2", "mixed_precision", True), ("llama", "fp32", True), ("llama", "mixed_precision", False))
for name, recipe, ckpt in CASES:
    r = measure.measure_training_step(TINY[name], recipe, 64, 2, ckpt, device="cpu")
    out[f"{name} {recipe} {ckpt}"] = r["error_pct"]
for name in ("gpt2", "llama", "t5", "bert"):
    out[f"{name} bf16 prefill"] = measure.measure_inference(TINY[name], "bf16", 64, 2, device="cpu")["error_pct"]
print("RESULT" + json.dumps(out))
"""


@pytest.mark.parametrize("env", [{"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "OMP_NUM_THREADS": "1"},
                                 {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                                  "OMP_NUM_THREADS": "2"},
                                 {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "OMP_NUM_THREADS": "2"}],
                         ids=["default-isa-1-thread", "avx2-2-threads", "avx512-core-no-bf16"])
def test_training_prediction_on_other_cpu_code_paths(env):
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    kernels = out.pop("kernels")
    if env.get("ATEN_CPU_CAPABILITY") == "default":
        assert kernels["aten_cpu_capability"] == "DEFAULT"
    assert kernels["threads"] == int(env["OMP_NUM_THREADS"])
    if env["ONEDNN_MAX_CPU_ISA"] != "AVX512_CORE":  # oneDNN capped below AVX-512: ATen's bf16 kernel, no workspace
        assert kernels["bf16_matmul_scratch"] is False and not any(kernels["bf16_workspace_bytes"].values())
    elif not kernels["onednn_bf16"]:  # a CPU without AVX-512 can't go up to the cap: it stays on ATen's kernel
        assert kernels["bf16_matmul_scratch"] is False
    else:  # AVX-512 capped below BF16: oneDNN emulates bf16 and copies each product's output to fp32
        assert kernels["bf16_matmul_scratch"] is True
    for case, error_pct in out.items():
        limit = 2.0 if "bf16 prefill" in case else 5.0  # issue 27: bf16 prefill within 2 % on every CPU class
        assert abs(error_pct) < limit, (case, error_pct, kernels)
