"""Log-likelihood evaluation against lm-evaluation-harness itself: on every bundled task (core/data/lm_eval_tasks) the
bundled SmolLM2 fp32 gives the prompts, the per-choice log-likelihoods (within 1e-3 nats), the per-item acc /
acc_norm and the standard errors that ``lm_eval --model hf`` gives from the same YAML, run offline in a subprocess.
Also: the generated items are reproducible and have one right answer each, the paired test, an endpoint without
prompt log-probabilities refused, uploads with bad rows named by line, the export shape and the CLI."""
from __future__ import annotations

import glob
import http.server
import importlib.util
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.evaluate import (TASK_DIR, RunSettings, UploadError, load_tasks, local_scorer, mcnemar, mean_stderr,
                           paired, paired_bootstrap, results_json, run_task, task_from_items, task_from_yaml,
                           why_differ)
from core.evaluate.task_files import choices_of, gold_index

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 20  # items per task in the lm_eval comparison (2 CPU cores)


def _generator():
    spec = importlib.util.spec_from_file_location("make_eval_tasks", ROOT / "scripts" / "make_eval_tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fp32():
    from core.run.models import load_model

    return load_model(None, dtype="fp32", device="cpu")


def test_the_task_folder_is_what_the_generator_writes():
    written = _generator().files()
    assert {p.name: p.read_text(encoding="utf-8") for p in TASK_DIR.iterdir() if p.is_file()} == written


def test_at_least_400_items_over_4_tasks_each_with_one_right_answer():
    gen = _generator()
    tasks = load_tasks()
    assert len(tasks) >= 4 and sum(len(t.docs) for t in tasks.values()) >= 400
    for task in tasks.values():
        if task.output_type != "multiple_choice":
            continue
        for doc in task.docs:
            choices = choices_of(task, doc)
            assert len(set(choices)) == len(choices) >= 2, doc
            gold = choices[gold_index(task, doc)]
            if "op" in doc:  # arithmetic: the answer is the sum or difference, and no other choice is
                assert gold == str(doc["a"] + doc["b"] if doc["op"] == "+" else doc["a"] - doc["b"])
            elif doc.get("kind") == "capital":
                assert gold == dict(gen.CAPITALS)[doc["question"].removeprefix("What is the capital of ")[:-1]]
            elif doc.get("kind") == "animal":
                animal = doc["question"].split("does the ")[1].split(" belong")[0]
                assert gold == dict(gen.ANIMALS)[animal] and len(set(choices) & set(gen.ANIMAL_CLASSES)) == 4
            elif doc.get("kind") == "opposite":
                word = doc["question"].split('"')[1]
                pairs = {frozenset(p) for p in gen.OPPOSITES}
                assert [c for c in choices if frozenset((word, c)) in pairs] == [gold]
            elif "text" in doc:  # sentiment: exactly one phrase list matches, and it is the label
                pos = any(p in doc["text"] for p in gen.POSITIVE)
                neg = any(p in doc["text"] for p in gen.NEGATIVE)
                assert pos != neg and gold == ("positive" if pos else "negative")


@pytest.fixture(scope="module")
def lm_eval_samples(tmp_path_factory, fp32):
    """``lm_eval --model hf`` on every bundled task, offline, first LIMIT items: {task: (results, samples)}."""
    from core.run.models.bundled import ensure_bundled_decoder

    out = tmp_path_factory.mktemp("lm_eval")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    lm_eval = Path(sys.executable).with_name("lm_eval")
    proc = subprocess.run([str(lm_eval), "--model", "hf", "--model_args",
                           f"pretrained={ensure_bundled_decoder()},dtype=float32", "--device", "cpu",
                           "--include_path", str(TASK_DIR), "--tasks", ",".join(load_tasks()), "--limit", str(LIMIT),
                           "--batch_size", "8", "--log_samples", "--output_path", str(out)],
                          capture_output=True, text=True, env=env, cwd=out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(Path(glob.glob(str(out / "**" / "results_*.json"), recursive=True)[0]).read_text())
    samples = {}
    for task in load_tasks():
        path = glob.glob(str(out / "**" / f"samples_{task}_*.jsonl"), recursive=True)[0]
        samples[task] = sorted((json.loads(line) for line in Path(path).read_text().splitlines()),
                               key=lambda s: s["doc_id"])
    return results, samples


@pytest.fixture(scope="module")
def ours(fp32):
    scorer = local_scorer(fp32.model, fp32.tokenizer, batch_size=16)
    return {name: run_task(task, scorer, RunSettings(limit=LIMIT)) for name, task in load_tasks().items()}


def test_per_choice_logliks_prompts_and_items_equal_lm_eval(lm_eval_samples, ours):
    results, samples = lm_eval_samples
    worst, compared = 0.0, 0
    for name, run in ours.items():
        assert len(run.items) == len(samples[name]) == LIMIT
        for item, sample in zip(run.items, samples[name]):
            args = [sample["arguments"][k] for k in sorted(sample["arguments"], key=lambda k: int(k.split("_")[-1]))]
            if run.output_type == "loglikelihood_rolling":
                assert args[0]["arg_0"] == item.choices[0]
                theirs = [float(sample["filtered_resps"][0] if not isinstance(sample["filtered_resps"][0], list)
                                else sample["filtered_resps"][0][0])]
            else:
                assert [a["arg_0"] for a in args] == [item.context] * len(item.choices)
                assert [a["arg_1"] for a in args] == [" " + c for c in item.choices]
                theirs = [float(r[0]) for r in sample["filtered_resps"]]
                assert (item.metrics["acc"], item.metrics["acc_norm"]) == (sample["acc"], sample["acc_norm"])
            deltas = [abs(a - b) for a, b in zip(item.logliks, theirs)]
            assert len(deltas) == len(theirs) and max(deltas) < 1e-3, (name, item.doc_id, item.logliks, theirs)
            worst, compared = max(worst, max(deltas)), compared + len(deltas)
        mine = results_json([run])["results"][name]
        for key, value in results["results"][name].items():
            if "," in key and isinstance(value, float):
                assert mine[key] == pytest.approx(value, rel=1e-4, abs=1e-9), (name, key)
    print(f"max |Δ loglik| over {compared} requests: {worst:.2e} nats")


def test_stderr_and_paired_tests_against_references():
    from lm_eval.api.metrics import mean_stderr as lm_mean_stderr
    from scipy.stats import binomtest

    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert mean_stderr(values) == pytest.approx(lm_mean_stderr(values))
    a = [True] * 30 + [False] * 10
    b = [True] * 22 + [False] * 8 + [True] * 2 + [False] * 8  # 8 right only in A, 2 only in B
    test = mcnemar(a, b)
    assert (test.a_only, test.b_only, test.test) == (8, 2, "McNemar exact")
    assert test.p_value == pytest.approx(binomtest(2, 10, 0.5).pvalue)
    assert "No significant difference" in mcnemar(a, a).sentence
    assert paired_bootstrap([1.0, 2.0, 3.0] * 10, [1.0, 2.0, 3.0] * 10).p_value == 1.0
    assert paired_bootstrap([0.0] * 30, [1.0 + 0.1 * (i % 3) for i in range(30)]).significant
    with pytest.raises(ValueError, match="same items"):
        mcnemar([True], [True, False])


def test_a_variant_against_itself_and_against_4_layers_removed(fp32):
    from core.evaluate.variants import variant_model

    tasks = load_tasks()
    largest = max((t for t in tasks.values() if t.output_type == "multiple_choice"), key=lambda t: len(t.docs))
    run = run_task(largest, local_scorer(fp32.model, fp32.tokenizer), RunSettings())
    again = run_task(largest, local_scorer(fp32.model, fp32.tokenizer, batch_size=5), RunSettings(batch_size=5))
    same = paired(run, again, "acc")
    assert not same.significant and "No significant difference" in same.sentence
    pruned = variant_model("layers-4", lambda **_: fp32)
    cut = run_task(largest, local_scorer(pruned.model, pruned.tokenizer), RunSettings(variant="layers-4"))
    test = paired(run, cut, "acc")
    assert test.significant and "significant at 95 %" in test.sentence, test.sentence
    diff = why_differ(run, cut)
    assert [c.setting for c in diff.changes] == ["variant"]
    assert len(diff.flipped) == test.a_only + test.b_only and diff.items[0].flips
    assert diff.items[0].a_logliks == run.items[diff.items[0].doc_id].logliks


def test_why_differ_names_the_few_shot_count(fp32):
    task = load_tasks()["llmlab_sentiment"]
    scorer = local_scorer(fp32.model, fp32.tokenizer)
    zero = run_task(task, scorer, RunSettings(num_fewshot=0, limit=12))
    two = run_task(task, scorer, RunSettings(limit=12))
    diff = why_differ(zero, two)
    assert [(c.setting, c.a, c.b) for c in diff.changes] == [("num_fewshot", 0, None)]
    assert zero.items[0].context.count("Review:") == 1 and two.items[0].context.count("Review:") == 3
    assert all(len(i.a_logliks) == len(i.b_logliks) == 2 for i in diff.items)
    assert sum(i.flips for i in diff.items) == sum(zero.items[k].metrics["acc"] != two.items[k].metrics["acc"]
                                                   for k in range(12))


class _NoLogprobs(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/completions that answers text but never prompt log-probabilities."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"id": "x", "object": "text_completion", "model": "m",
                           "choices": [{"index": 0, "text": " ok", "logprobs": None, "finish_reason": "length"}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def test_an_endpoint_without_prompt_logprobs_is_refused(fp32):
    from core.evaluate import endpoint_scorer
    from core.serve.endpoints import Endpoint, EndpointError

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoLogprobs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = Endpoint("fake", f"http://127.0.0.1:{server.server_address[1]}", "m")
        task = load_tasks()["llmlab_facts"]
        with pytest.raises(EndpointError, match="neither prompt_logprobs nor echoed logprobs"):
            run_task(task, endpoint_scorer(endpoint, fp32.tokenizer), RunSettings(variant="endpoint", limit=2))
    finally:
        server.shutdown()


def test_uploads_name_each_bad_row_by_line():
    good = '{"question": "2 + 2?", "choices": ["3", "4"], "answer": 1}\n'
    task = task_from_items(good * 3, "mine.jsonl")
    assert task.output_type == "multiple_choice" and len(task.docs) == 3
    bad = (good + '{"question": "x", "choices": ["a", "a"], "answer": 0}\n' + "not json\n"
           + '{"question": "y", "choices": ["a", "b"], "answer": "c"}\n')
    with pytest.raises(UploadError) as info:
        task_from_items(bad, "mine.jsonl")
    assert [n for n, _ in info.value.problems] == [2, 3, 4]
    assert "line 2: two choices are the same" in str(info.value) and "line 4: the answer 'c'" in str(info.value)
    csv_text = "question,choices,answer\nCapital of France?,Paris|Rome,Paris\nBroken?,only one,0\n"
    with pytest.raises(UploadError, match="line 3: 'choices' needs at least two"):
        task_from_items(csv_text, "mine.csv")
    assert task_from_items(csv_text.rsplit("Broken", 1)[0], "mine.csv").docs[0]["gold"] == 0
    with pytest.raises(UploadError, match="empty"):
        task_from_items(b"", "mine.jsonl")
    with pytest.raises(UploadError, match="limit"):
        task_from_items(b"x" * (6 * 2**20), "mine.jsonl")
    yaml_text = (TASK_DIR / "llmlab_facts.yaml").read_text()
    data = (TASK_DIR / "llmlab_facts.jsonl").read_bytes()
    assert len(task_from_yaml(yaml_text, {"llmlab_facts.jsonl": data}).docs) == 120
    broken = data.replace(b'"gold": 1', b'"gold": 9', 1)
    with pytest.raises(UploadError, match=r"line \d+: The target index 9"):
        task_from_yaml(yaml_text, {"llmlab_facts.jsonl": broken})
    with pytest.raises(UploadError, match="data file"):
        task_from_yaml(yaml_text, {})


def test_the_cli_writes_lm_evals_results_shape(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "core.evaluate", "--tasks", "llmlab_facts,llmlab_passages",
                           "--variant", "fp32", "--output-path", str(tmp_path), "--log-samples", "--limit", "3"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(next(tmp_path.glob("results_*.json")).read_text())
    facts = results["results"]["llmlab_facts"]
    assert {"acc,none", "acc_stderr,none", "acc_norm,none", "acc_norm_stderr,none"} <= set(facts)
    assert results["n-samples"]["llmlab_facts"] == {"original": 120, "effective": 3}
    assert math.isfinite(results["results"]["llmlab_passages"]["word_perplexity,none"])
    rows = [json.loads(line) for line in next(tmp_path.glob("samples_llmlab_facts_*.jsonl")).read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["resps"]) == 4 for r in rows)
    bad = subprocess.run([sys.executable, "-m", "core.evaluate", "--tasks", "nope", "--output-path", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and "Unknown task nope" in bad.stderr


def test_stop_keeps_the_items_already_scored(fp32):
    stop = threading.Event()
    task = load_tasks()["llmlab_facts"]
    full = run_task(task, local_scorer(fp32.model, fp32.tokenizer), RunSettings(limit=10))
    run = run_task(task, local_scorer(fp32.model, fp32.tokenizer, on_progress=lambda done, total: stop.set(),
                                      stop=stop), RunSettings(limit=10), stop=stop)
    assert run.stopped and not full.stopped and 0 < len(run.items) < 10
    for item in run.items:  # every kept item is whole: all four choices scored, as in the full run
        assert item.logliks == pytest.approx(full.items[item.doc_id].logliks, abs=1e-4) and len(item.logliks) == 4
    assert len(run.items) == 1 or math.isfinite(run.metric("acc").stderr)


def test_a_loglikelihood_task_is_refused_where_the_scorer_cannot_say_greedy():
    """An endpoint's prompt log-probs give no per-token argmax: a loglikelihood task's acc (every answer token the
    top choice) would read 0 for every item, so it is refused with the reason rather than scored."""
    from core.evaluate.loglik import item_metrics
    from core.evaluate.task_files import LmEvalTask

    task = LmEvalTask("capital", "loglikelihood", ({"q": "Paris is in", "a": "France"},), doc_to_text="{{q}}",
                      doc_to_target="{{a}}")
    assert item_metrics(task, task.docs[0], [-1.5], [True]) == {"acc": 1.0, "loglik": -1.5}
    with pytest.raises(ValueError, match="does not report that"):
        item_metrics(task, task.docs[0], [-1.5], [None])
