"""core.optimize.distillation: the loss is Hinton et al.'s T²·KL (checked against the Quantization page's own numpy
KL), soft labels spread with T, and a short real run on the bundled SmolLM2 lowers the pruned student's KL to the
teacher on the held-out reference text, leaving the teacher untouched; Stop and a second run are handled."""
import threading

import numpy as np
import pytest
import torch

from core.optimize import distillation as D
from core.run import pruning
from core.run.quantization import kl_divergence


def test_loss_is_t_squared_times_the_kl_of_softened_distributions():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(7, 50)) * 3, rng.normal(size=(7, 50)) * 3
    t1 = float(D.distillation_loss(torch.tensor(student), torch.tensor(teacher), 1.0))
    assert t1 == pytest.approx(float(np.mean(kl_divergence(teacher, student))), rel=1e-5)
    t3 = float(D.distillation_loss(torch.tensor(student), torch.tensor(teacher), 3.0))
    assert t3 == pytest.approx(9 * float(np.mean(kl_divergence(teacher / 3, student / 3))), rel=1e-5)
    same = torch.tensor(teacher)
    assert float(D.distillation_loss(same, same, 2.0)) == pytest.approx(0.0, abs=1e-6)


def test_soft_labels_spread_with_temperature_and_bad_temperatures_are_refused():
    logits = np.array([5.0, 3.0, 1.0, 0.0])
    p1, p4 = D.soft_targets(logits, 1.0), D.soft_targets(logits, 4.0)
    assert p1.sum() == pytest.approx(1.0) and p4.sum() == pytest.approx(1.0)
    assert p4[0] < p1[0] and p4[-1] > p1[-1] and D.entropy_bits(p4) > D.entropy_bits(p1)
    assert D.entropy_bits([0.25] * 4) == pytest.approx(2.0)
    for bad in (0, -1, "hot", float("nan"), 1e6):
        with pytest.raises(D.DistillationError, match="temperature"):
            D.soft_targets(logits, bad)


@pytest.fixture(scope="module")
def teacher():
    from core.run.models import load_model

    return load_model(None, dtype="fp32", device="cpu")


def test_table_of_soft_labels_keeps_all_the_mass(teacher):
    logits = D.next_token_logits(teacher, "The capital of France is")
    rows = D.temperature_table(logits, teacher.tokenizer, (1.0, 2.0), top=5)
    assert len(rows) == 6 and rows[-1]["token"] == "(all other tokens)"
    for column in ("p at T=1 (%)", "p at T=2 (%)"):
        assert sum(r[column] for r in rows) == pytest.approx(100.0)
    assert rows[0]["p at T=2 (%)"] < rows[0]["p at T=1 (%)"]  # the top token gives mass away
    assert "Paris" in rows[0]["token"]
    with pytest.raises(D.DistillationError, match="empty"):
        D.next_token_logits(teacher, "  ")


@pytest.mark.long
def test_distilling_a_pruned_student_lowers_its_kl_to_the_teacher(teacher):
    probe = teacher.tokenizer("Ships", return_tensors="pt").input_ids
    with torch.inference_mode():
        teacher_before = teacher.model(input_ids=probe).logits.clone()
    steps = []
    result = D.prune_and_distil(teacher, remove=6, steps=6, temperature=2.0, learning_rate=1e-4, seq_len=64,
                                on_step=steps.append)
    assert [s.step for s in steps] == list(range(1, 7)) and len(result.losses) == 6
    assert result.student_layers == 24 and pruning.layer_count(result.student) == 24
    assert result.student_weight_bytes < result.teacher_weight_bytes
    assert result.distilled["kl_mean_nats"] < result.pruned["kl_mean_nats"]
    assert result.kl_recovered_pct > 0
    assert result.pruned["perplexity"] > result.teacher["perplexity"]
    assert pruning.layer_count(teacher.model) == 30 and teacher.model.config.num_hidden_layers == 30
    with torch.inference_mode():
        assert torch.equal(teacher.model(input_ids=probe).logits, teacher_before)  # the teacher is not trained
    assert "student" not in result.to_dict() and result.to_dict()["kl_recovered_pct"] == result.kl_recovered_pct
    rows = {r["model"]: r for r in result.score_rows()}
    assert rows["distilled student"]["KL to teacher (nats)"] == result.distilled["kl_mean_nats"]
    assert rows["pruned student"]["top-1 agreement (%)"] == 100 * result.pruned["top1_agreement"]


@pytest.mark.long
def test_stop_and_a_second_run_and_bad_input(teacher):
    stop = threading.Event()
    stop.set()
    result = D.prune_and_distil(teacher, remove=2, steps=50, seq_len=32, stop=stop)
    assert result.stopped and result.losses == []
    assert result.distilled["kl_mean_nats"] == pytest.approx(result.pruned["kl_mean_nats"])
    assert D._ONE_AT_A_TIME.acquire(blocking=False)
    try:
        with pytest.raises(D.DistillationBusy, match="Another distillation"):
            D.prune_and_distil(teacher, remove=2, steps=1, seq_len=32)
    finally:
        D._ONE_AT_A_TIME.release()
    for kwargs, match in [({"remove": 30}, "Layers to remove"), ({"steps": 0}, "Training steps"),
                          ({"learning_rate": -1}, "learning rate"), ({"temperature": 0}, "temperature"),
                          ({"seq_len": 100_000}, "Sequence length")]:
        with pytest.raises(D.DistillationError, match=match):
            D.prune_and_distil(teacher, **kwargs)
