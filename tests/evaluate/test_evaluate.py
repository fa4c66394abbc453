"""core.evaluate: ROUGE equals Google's rouge-score on fixed strings (and hand-computed values), labels are read off
completions, and the bundled SmolLM2 runs the bundled tasks with zero/one/few-shot prompts; the verdict says what
the numbers say."""
import pytest
from rouge_score import rouge_scorer

from core.evaluate import metrics, report, runner
from core.evaluate.tasks import TASKS, eval_task
from core.run.prompts import build_icl_prompt

PAIRS = [("the cat sat", "the cat sat on the mat"),
         ("Jonas buys milk and bread for Priya.", "Jonas will pick up milk and bread on his way home for Priya."),
         ("running dogs ran", "the dog runs"), ("", "a reference"), ("Exactly the same.", "Exactly the same.")]


def test_rouge_matches_hand_computed_values():
    scores = metrics.rouge("the cat sat", "the cat sat on the mat")
    assert scores["rouge1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # P 3/3, R 3/6
    assert scores["rouge2"] == pytest.approx(2 * 1.0 * 0.4 / 1.4)  # P 2/2, R 2/5 bigrams
    assert scores["rougeL"] == pytest.approx(2 / 3)  # LCS 3 of 3 and 6


@pytest.mark.parametrize("prediction,reference", PAIRS)
def test_rouge_equals_rouge_score(prediction, reference):
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    expected = scorer.score(reference, prediction)
    got = metrics.rouge(prediction, reference)
    for name in ("rouge1", "rouge2", "rougeL"):
        assert got[name] == expected[name].fmeasure


def test_labels_answers_and_exact_match():
    assert metrics.predicted_label(" Positive.\nClassify this review:", ("positive", "negative")) == "positive"
    assert metrics.predicted_label("I think it is NEGATIVE", ("positive", "negative")) == "negative"
    assert metrics.predicted_label("neutral", ("positive", "negative")) == metrics.NO_LABEL
    assert metrics.first_line("\n  Ana books the bus.\nDialogue:\nX: y") == "Ana books the bus."
    assert metrics.exact_match("Ana books  the bus", "ana books the bus.")


def test_the_bundled_tasks_never_show_a_test_item_in_a_prompt():
    for key, task in TASKS.items():
        shots = {ex.input for ex in task.prompts.examples}
        assert len(task.items) >= 6 and not shots & {i.input for i in task.items}, key
        prompt = build_icl_prompt(task.prompts, "few-shot", query=task.items[0].input)
        assert prompt.endswith(task.prompts.output_prefix) and task.items[0].input in prompt
    assert eval_task("review-sentiment").kind == "classification"
    with pytest.raises(ValueError, match="Unknown task"):
        eval_task("nope")


def test_bad_setups_are_refused():
    with pytest.raises(runner.EvaluationInputError, match="at least one"):
        runner.run_evaluation("review-sentiment", [])
    with pytest.raises(runner.EvaluationInputError, match="Unknown technique"):
        runner.run_evaluation("review-sentiment", [runner.Setup("m", "ten-shot", lambda p, n: "")])


def test_stop_keeps_the_finished_rows():
    import threading

    stop = threading.Event()
    calls = []

    def generate(prompt, n):
        calls.append(prompt)
        if len(calls) == 2:
            stop.set()
        return "positive"

    run = runner.run_evaluation("review-sentiment", [runner.Setup("m", "zero-shot", generate)], stop=stop)
    assert run.stopped and len(run.rows) == 2


def _run(scores: dict[str, list[bool]], stopped: bool = False, task: str = "review-sentiment") -> runner.EvalRun:
    """An EvalRun whose setups ("model · technique") answered these items right (True) or wrong (False); for the
    summarization task the booleans are ROUGE scores of 1 or 0."""
    run = runner.EvalRun(task, stopped=stopped)
    for label, answers in scores.items():
        model, technique = label.split(" · ")
        for i, right in enumerate(answers):
            row = {"setup": label, "model": model, "technique": technique, "item": i, "seconds": 0.1}
            if task == "review-sentiment":
                row["correct"] = right
            else:
                row.update({"rouge1": float(right), "rouge2": float(right), "rougeL": float(right),
                            "exact_match": right})
            run.rows.append(row)
    return run


def test_the_verdict_names_a_tie_as_a_tie():
    """Issue 32: one-shot and few-shot both at 100 % were announced as "Best: one-shot"."""
    said = runner.verdict(_run({"m · zero-shot": [True] * 6 + [False] * 2, "m · one-shot": [True] * 8,
                                "m · few-shot": [True] * 8}))
    assert said.startswith("Best on this task: m · one-shot and m · few-shot tie at accuracy 100 % (8 items each).")
    assert "On m, few-shot beats zero-shot (100 vs 75)." in said
    every = runner.verdict(_run({"m · zero-shot": [True, False], "m · few-shot": [False, True],
                                 "n · few-shot": [True, True, False, False]}))
    assert every.startswith("Best on this task: none, m · zero-shot, m · few-shot and n · few-shot tie at "
                            "accuracy 50 % (2, 2 and 4 items).")
    assert "On m, few-shot ties with zero-shot (50 vs 50)." in every
    one = runner.verdict(_run({"m · zero-shot": [True, True, False], "m · few-shot": [True, False, False]}))
    assert one.startswith("Best on this task: m · zero-shot (accuracy 66.7 %, 3 items).")
    assert "does not beat zero-shot (33.3 vs 66.7)" in one


def test_the_verdict_agrees_counts_and_calls_a_one_answer_lead_what_it_is():
    """Issue 32: with Items = 1 the verdict said "zero-shot (accuracy 100 %, 1 items)" as if it were a win."""
    said = runner.verdict(_run({"m · zero-shot": [True], "m · few-shot": [False]}))
    assert "1 item)" in said and "1 items" not in said
    assert "one answer ahead of m · few-shot (0 %): with 1 item it is not a clear win" in said
    close = runner.verdict(_run({"m · zero-shot": [True] * 7 + [False], "m · few-shot": [True] * 6 + [False] * 2}))
    assert "one answer ahead of m · few-shot (75 %): with 8 items it is not a clear win" in close
    clear = runner.verdict(_run({"m · zero-shot": [True] * 8, "m · few-shot": [True] * 4 + [False] * 4}))
    assert "one answer" not in clear and "not a clear win" not in clear
    alone = runner.verdict(_run({"m · one-shot": [True]}))
    assert alone == "Best on this task: m · one-shot (accuracy 100 %, 1 item)."
    summary = runner.verdict(_run({"m · zero-shot": [True], "m · few-shot": [False]}, task="dialogue-summarization"))
    assert summary.startswith("Best on this task: m · zero-shot (rougeL F1 1, 1 item).")
    assert "Scored on 1 item: one summary decides this ranking" in summary


def test_the_verdict_marks_setups_scored_on_fewer_items():
    """Issue 32: after Stop, setups with 8 and 16 items were ranked together without a note."""
    said = runner.verdict(_run({"m · zero-shot": [True] * 12 + [False] * 4, "m · few-shot": [True] * 8},
                               stopped=True))
    assert said.startswith("Best on this task: m · few-shot (accuracy 100 %, 8 items).")
    assert ("m · few-shot was scored on only 8 items, the others on 16 (the run was stopped): its score does not "
            "compare with theirs.") in said
    assert "few-shot beats zero-shot (100 vs 75, on 8 and 16 items)" in said
    assert "one answer" not in said  # a lead over a setup of a different size is not counted in answers
    two = runner.verdict(_run({"m · zero-shot": [True] * 4, "m · one-shot": [True], "m · few-shot": [False] * 2}))
    assert ("m · one-shot (1 item) and m · few-shot (2 items) were scored on fewer items than the others (4): "
            "their scores do not compare with the rest.") in two
    full = runner.verdict(_run({"m · zero-shot": [True] * 4, "m · few-shot": [True] * 3 + [False]}))
    assert "fewer items" not in full and "scored on only" not in full


@pytest.fixture(scope="module")
def smollm2():
    from core.run.models import load_model

    return runner.local_generator(load_model(None, dtype="fp32", device="cpu"))


@pytest.mark.long
def test_few_shot_against_zero_shot_on_the_bundled_classification_set(smollm2):
    setups = [runner.Setup("SmolLM2", t, smollm2) for t in ("zero-shot", "few-shot")]
    run = runner.run_evaluation("review-sentiment", setups)
    rows = {r["technique"]: r for r in runner.summary(run)}
    assert rows["zero-shot"]["items"] == rows["few-shot"]["items"] == 16
    zero, few = rows["zero-shot"]["accuracy (%)"], rows["few-shot"]["accuracy (%)"]
    said = runner.verdict(run)
    assert ("few-shot beats zero-shot" in said) == (few > zero) and ("does not beat" in said) == (few < zero)
    assert ("few-shot ties with zero-shot" in said) == (few == zero)
    assert f"{few:.3g} vs {zero:.3g}" in said
    # every answer is a label the task knows, or "(none)", and correctness is the label against the reference
    for r in run.rows:
        assert r["answer"] in ("positive", "negative", metrics.NO_LABEL)
        assert r["correct"] == (r["answer"] == r["reference"])
    assert report.run_csv(run).splitlines()[0].startswith("setup,model,technique,item,input,reference,completion")


@pytest.mark.long
def test_summaries_are_scored_with_rouge(smollm2):
    run = runner.run_evaluation("dialogue-summarization", [runner.Setup("SmolLM2", "one-shot", smollm2)], limit=2)
    (row,) = runner.summary(run)
    assert row["items"] == 2 and 0 < row["rougeL F1"] <= 1
    for r in run.rows:
        assert r["rouge1"] == metrics.rouge(r["answer"], r["reference"])["rouge1"]
    wide = report.examples_frame(run)
    assert list(wide.columns) == ["item", "input", "reference", "SmolLM2 · one-shot"]


@pytest.mark.long
def test_zero_shot_chain_of_thought_reasons_then_answers_in_two_stages(smollm2):
    """Kojima et al.'s two stages on the real model: the trigger draws a reasoning, the answer cue then draws the
    label, and the reasoning is kept with the row."""
    calls = []

    def recording(prompt, max_new_tokens):
        calls.append((prompt, max_new_tokens))
        return smollm2(prompt, max_new_tokens)

    run = runner.run_evaluation("review-sentiment", [runner.Setup("SmolLM2", runner.COT, recording)], limit=2)
    assert len(calls) == 4 and [n for _, n in calls] == [runner.COT_REASONING_TOKENS, 3] * 2
    first, second = calls[0][0], calls[1][0]
    assert first.endswith("Sentiment: Let's think step by step.") and second.startswith(first)
    assert second.endswith("Therefore, the answer (positive or negative) is")
    for r, (answer_prompt, _) in zip(run.rows, calls[1::2]):
        assert r["reasoning"] and f" {r['reasoning']}\nTherefore" in answer_prompt
        assert r["answer"] in ("positive", "negative", metrics.NO_LABEL)
    (row,) = runner.summary(run)
    assert row["technique"] == runner.COT and row["items"] == 2


@pytest.mark.long
def test_pruned_variants_are_scored_beside_the_dense_model():
    """Evaluate's pruned variants are real pruned copies: removing 4 layers changes the answers, zeros are measured,
    and the fp32 model the page caches is left dense."""
    from core.evaluate import variants
    from core.run.pruning import measured_sparsity
    from core.run.models import load_model

    loaded = {}

    def load(**options):
        key = tuple(sorted(options.items()))
        loaded.setdefault(key, load_model(None, device="cpu", **options))
        return loaded[key]

    setups = variants.setups(["fp32", "layers-4", "wanda-50"], ["zero-shot"], load)
    assert [s.model for s in setups] == ["SmolLM2-135M fp32", "SmolLM2-135M 4 layers removed",
                                         "SmolLM2-135M Wanda 50 % sparse"]
    base = next(iter(loaded.values()))
    assert len(loaded) == 1 and measured_sparsity(base.model) < 0.01  # one fp32 load, and it stays dense
    run = runner.run_evaluation("review-sentiment", setups, limit=4)
    by_model = {}
    for r in run.rows:
        by_model.setdefault(r["model"], []).append(r["completion"])
    assert len(by_model) == 3 and all(len(v) == 4 for v in by_model.values())
    assert by_model["SmolLM2-135M 4 layers removed"] != by_model["SmolLM2-135M fp32"]
    assert by_model["SmolLM2-135M Wanda 50 % sparse"] != by_model["SmolLM2-135M fp32"]
    assert {row["model"] for row in runner.summary(run)} == set(by_model)


def test_unknown_and_incomplete_variants_are_refused():
    from core.evaluate import variants

    with pytest.raises(runner.EvaluationInputError, match="Unknown model variant 'fp64'"):
        variants.setups(["fp64"], ["zero-shot"], lambda **o: None)
    with pytest.raises(runner.EvaluationInputError, match="needs a server"):
        variants.setups([variants.ENDPOINT], ["zero-shot"], lambda **o: None)


def _adapter_zip(loaded) -> bytes:
    """A real PEFT LoRA adapter for SmolLM2 with non-zero B matrices, zipped the way the Fine-tune page downloads it."""
    import copy
    import io
    import tempfile
    import zipfile
    from pathlib import Path

    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(copy.deepcopy(loaded.model), LoraConfig(r=8, target_modules=["q_proj", "v_proj"],
                                                                   init_lora_weights=False))
    with torch.no_grad():  # an adapter that changes what the model says (a trained one would, on its own data)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(buffer, "w") as archive:
        model.save_pretrained(folder)
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            archive.writestr(name, (Path(folder) / name).read_bytes())
    return buffer.getvalue()


@pytest.mark.long
def test_an_adapter_variant_loads_peft_files_onto_a_copy():
    from core.evaluate import variants
    from core.run.models import load_model

    base = load_model(None, dtype="fp32", device="cpu")
    before = {k: v.clone() for k, v in list(base.model.state_dict().items())[:4]}
    files = variants.adapter_files_from_zip(_adapter_zip(base))
    assert set(files) == set(variants.ADAPTER_FILES)
    setups = variants.setups(["fp32", variants.ADAPTER], ["zero-shot"], lambda **o: base, adapter=files)
    run = runner.run_evaluation("dialogue-summarization", setups, limit=1)  # a sentence, not one word: it shows
    completions = {}
    for r in run.rows:
        completions.setdefault(r["model"], []).append(r["completion"])
    assert completions["SmolLM2-135M + fine-tuned adapter"] != completions["SmolLM2-135M fp32"]
    assert all((base.model.state_dict()[k] == v).all() for k, v in before.items())  # the base was not touched
    assert not any("lora" in n for n, _ in base.model.named_parameters())


def test_bad_adapter_files_are_refused_with_a_reason():
    import io
    import zipfile

    from core.evaluate import variants

    with pytest.raises(runner.EvaluationInputError, match="not a zip"):
        variants.adapter_files_from_zip(b"not a zip at all")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("adapter_config.json", "{}")
    with pytest.raises(runner.EvaluationInputError, match="no adapter_model.safetensors"):
        variants.adapter_files_from_zip(buffer.getvalue())
    with pytest.raises(runner.EvaluationInputError, match="needs an adapter"):
        variants.setups([variants.ADAPTER], ["zero-shot"], lambda **o: None)
