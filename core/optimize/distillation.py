"""Knowledge distillation, live and small: a layer-pruned SmolLM2 (the student) learns the full model's (the
teacher's) next-token distributions.

- Soft targets: the teacher's softmax at temperature T, p_i = exp(z_i / T) / Σ_j exp(z_j / T); T > 1 spreads the
  probability over more tokens and shows what the teacher thinks is *almost* right (Hinton, Vinyals & Dean 2015,
  "Distilling the Knowledge in a Neural Network", §2, Eq. 1).
- The loss: KL(p_teacher,T ‖ p_student,T) · T², averaged over token positions. The T² keeps the gradients' size
  independent of T ("it is important to multiply them by T²", ibid. §2). T = 1 is plain KL to the teacher.
- The student: the teacher with its least influential layers removed (ShortGPT's Block Influence, measured on the
  training text; core.run.pruning), then every remaining weight trained with AdamW on the bundled
  distillation text (``core/data/distillation_text.txt``, CC0). Prune, then distil, is the recipe of Minitron
  (Muralidharan et al. 2024, "Compact Language Models via Pruning and Knowledge Distillation", §3–4).
- Scored before and after on a different text, the bundled reference text of the Quantization page (held out):
  perplexity, mean KL to the teacher and top-1 agreement (core.run.pruning.quality).

Each training step takes its turn in the process-wide model-work queue (core.common.scheduler) so other users' requests
interleave with a run; one distillation runs at a time in a process (a second is refused while it trains).
"""
from __future__ import annotations

import copy
import gc
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.run.pruning import CALIBRATION_TEXT_PATH as TEXT_PATH
from core.run.tokens import token_text

DEFAULT_TEMPERATURE = 2.0
DEFAULT_REMOVE = 6
DEFAULT_STEPS = 30
DEFAULT_LEARNING_RATE = 1e-4
DEFAULT_SEQ_LEN = 128
EVAL_TOKENS = 192
MAX_STEPS = 500
MAX_TEMPERATURE = 20.0

_ONE_AT_A_TIME = threading.Lock()


class DistillationError(ValueError):
    """Bad distillation input; the message is user-facing."""


class DistillationBusy(RuntimeError):
    """Another distillation is training in this process."""


def load_distillation_text(path: Path | str = TEXT_PATH) -> str:
    """The bundled training text without its header comment: the text pruning calibrates on
    (core.run.pruning.load_calibration_text)."""
    from core.run.pruning import load_calibration_text

    return load_calibration_text(path)


def _check_temperature(temperature) -> float:
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise DistillationError("The temperature must be a number above 0.") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_TEMPERATURE:
        raise DistillationError(f"The temperature must be above 0 and at most {MAX_TEMPERATURE:g} (got {value:g}).")
    return value


def soft_targets(logits, temperature: float) -> np.ndarray:
    """softmax(z / T) along the last axis, in float64 (Hinton et al. 2015, Eq. 1)."""
    t = _check_temperature(temperature)
    z = np.asarray(logits, dtype=np.float64) / t
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def entropy_bits(probabilities) -> float:
    """Shannon entropy of one distribution, in bits."""
    p = np.asarray(probabilities, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def next_token_logits(loaded, prompt: str) -> np.ndarray:
    """The model's logits for the token after ``prompt`` (plain text, no chat template, its last 512 tokens), float32
    (core.run.generation.last_token_logits, as numpy)."""
    from core.run.generation import last_token_logits

    if not isinstance(prompt, str) or not prompt.strip():
        raise DistillationError("The prompt is empty: type a few words for the teacher to continue.")
    ids = loaded.tokenizer(prompt, return_tensors="pt").input_ids[:, -512:]
    return last_token_logits(loaded.model, ids.to(loaded.device)).numpy()


def temperature_table(logits_row, tokenizer, temperatures=(1.0, DEFAULT_TEMPERATURE), top: int = 10) -> list[dict]:
    """The ``top`` most likely next tokens (at T = 1) with their probability (%) at each temperature, and a last row
    "(all other tokens)" with the rest of the mass: what a hard label, T = 1, and soft labels, T > 1, give."""
    temps = [_check_temperature(t) for t in temperatures]
    dists = {t: soft_targets(logits_row, t) for t in temps}
    order = np.argsort(-np.asarray(logits_row))[:max(1, int(top))]
    rows = [{"token": token_text(tokenizer, i), "token id": int(i),
             **{f"p at T={t:g} (%)": 100.0 * float(dists[t][i]) for t in temps}} for i in order]
    rows.append({"token": "(all other tokens)", "token id": None,
                 **{f"p at T={t:g} (%)": 100.0 * float(1.0 - dists[t][order].sum()) for t in temps}})
    return rows


def distillation_loss(student_logits, teacher_logits, temperature: float):
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), the mean over positions (Hinton et al. 2015, §2).
    Tensors of shape (..., vocabulary); the teacher's carry no gradient."""
    import torch.nn.functional as F

    t = _check_temperature(temperature)
    vocab = student_logits.shape[-1]
    student = F.log_softmax(student_logits.float().reshape(-1, vocab) / t, dim=-1)
    teacher = F.log_softmax(teacher_logits.detach().float().reshape(-1, vocab) / t, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * (t * t)


@dataclass
class DistilProgress:
    step: int  # steps done
    steps: int
    loss: float
    seconds: float


@dataclass
class DistilResult:
    removed: list[int]
    teacher_layers: int
    temperature: float
    learning_rate: float
    steps_planned: int
    seq_len: int  # training tokens per step
    teacher: dict  # perplexity on the held-out text
    pruned: dict  # the student before training: perplexity, kl_mean_nats, top1_agreement
    distilled: dict | None = None  # after
    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    teacher_weight_bytes: int = 0
    student_weight_bytes: int = 0
    stopped: bool = False
    seconds: float = 0.0
    student: Any = field(default=None, repr=False)  # the trained student (a torch model), not serialised

    @property
    def student_layers(self) -> int:
        return self.teacher_layers - len(self.removed)

    @property
    def kl_recovered_pct(self) -> float | None:
        """How much of the KL to the teacher that pruning added, training took back (%)."""
        if not self.distilled or not self.pruned["kl_mean_nats"]:
            return None
        return 100.0 * (self.pruned["kl_mean_nats"] - self.distilled["kl_mean_nats"]) / self.pruned["kl_mean_nats"]

    def score_rows(self) -> list[dict]:
        """Teacher, pruned student and distilled student on the held-out text: perplexity, KL to the teacher
        (nats), top-1 agreement (%)."""
        rows = [{"model": "teacher", "perplexity": self.teacher["perplexity"], "KL to teacher (nats)": 0.0,
                 "top-1 agreement (%)": 100.0}]
        for name, q in (("pruned student", self.pruned), ("distilled student", self.distilled)):
            if q:
                rows.append({"model": name, "perplexity": q["perplexity"], "KL to teacher (nats)": q["kl_mean_nats"],
                             "top-1 agreement (%)": 100.0 * q["top1_agreement"]})
        return rows

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "student"}
        out.update(student_layers=self.student_layers, kl_recovered_pct=self.kl_recovered_pct)
        return out


def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=ids).logits[0].float().cpu().numpy()


def training_windows(tokenizer, text: str, seq_len: int) -> list:
    """Token windows of ``seq_len`` over ``text``, half-overlapping (1 × seq_len tensors)."""
    ids = tokenizer(text, return_tensors="pt").input_ids
    if ids.shape[1] < seq_len:
        raise DistillationError(f"The training text has {ids.shape[1]} tokens; a window needs {seq_len}.")
    stride = max(1, seq_len // 2)
    return [ids[:, s:s + seq_len] for s in range(0, ids.shape[1] - seq_len + 1, stride)]


def prune_and_distil(teacher, remove: int = DEFAULT_REMOVE, steps: int = DEFAULT_STEPS,
                     temperature: float = DEFAULT_TEMPERATURE, learning_rate: float = DEFAULT_LEARNING_RATE,
                     seq_len: int = DEFAULT_SEQ_LEN, *, seed: int = 0, training_text: str | None = None,
                     eval_text: str | None = None,
                     on_step: Callable[[DistilProgress], None] | None = None,
                     stop: threading.Event | None = None,
                     progress: Callable[[float, str], None] | None = None) -> DistilResult:
    """Remove ``remove`` layers from a copy of ``teacher`` (a core.run.models.LoadedModel of a causal LM on the CPU or a
    GPU), score it, distil it from the teacher for ``steps`` steps at ``temperature``, score it again.

    ``on_step`` gets a DistilProgress after every step; a set ``stop`` ends training early (``stopped``; the student
    is scored as it is). Raises DistillationError on bad input, DistillationBusy when another run is training."""
    import torch

    from core.common.checks import check_int
    from core.common.scheduler import GENERATION_QUEUE, QueueLeft
    from core.run import pruning
    from core.run.quantization import load_reference_text, model_weight_bytes

    report = progress or (lambda fraction, message: None)
    if getattr(teacher, "kind", "decoder") != "decoder":
        raise DistillationError("Distillation here needs a causal language model (a decoder) as the teacher.")
    layers = pruning.layer_count(teacher.model)
    remove = check_int(remove, "Layers to remove", 1, layers - 1, error=DistillationError)
    steps = check_int(steps, "Training steps", 1, MAX_STEPS, error=DistillationError)
    seq_len = check_int(seq_len, "Sequence length", 16, 1024, error=DistillationError)
    temperature = _check_temperature(temperature)
    try:
        learning_rate = float(learning_rate)
    except (TypeError, ValueError):
        raise DistillationError("The learning rate must be a number.") from None
    if not math.isfinite(learning_rate) or not 0 < learning_rate <= 0.01:
        raise DistillationError(f"The learning rate must be above 0 and at most 0.01 (got {learning_rate:g}).")
    tokenizer, device = teacher.tokenizer, teacher.device
    windows = training_windows(tokenizer, training_text or load_distillation_text(), seq_len)
    eval_ids = tokenizer(eval_text or load_reference_text(), return_tensors="pt").input_ids[:, :EVAL_TOKENS]
    if eval_ids.shape[1] < 16:
        raise DistillationError("The held-out text needs at least 16 tokens.")
    if not _ONE_AT_A_TIME.acquire(blocking=False):
        raise DistillationBusy("Another distillation is training on this server; try again when it has finished.")
    try:
        started = time.perf_counter()
        report(0.0, "Scoring the teacher on the held-out text…")
        eval_on_device = eval_ids.to(device)
        with GENERATION_QUEUE.admit("distillation", cancel=stop):
            dense = _logits(teacher.model, eval_on_device)
            drop = pruning.least_influential_layers(teacher.model, windows[0], remove)
        report(0.05, f"Removing layers {', '.join(map(str, drop))} (lowest Block Influence) from a copy…")
        student = copy.deepcopy(teacher.model)
        pruning.remove_layers(student, drop)
        student.eval()
        with GENERATION_QUEUE.admit("distillation", cancel=stop):
            before = pruning.quality(dense, _logits(student, eval_on_device), eval_ids[0])
        result = DistilResult(
            removed=drop, teacher_layers=layers, temperature=temperature, learning_rate=learning_rate,
            steps_planned=steps, seq_len=seq_len,
            teacher={"perplexity": pruning.quality(dense, dense, eval_ids[0])["perplexity"]}, pruned=before,
            teacher_weight_bytes=model_weight_bytes(teacher.model), student_weight_bytes=model_weight_bytes(student))
        torch.manual_seed(seed)
        student.train()
        optimizer = torch.optim.AdamW(student.parameters(), lr=learning_rate, weight_decay=0.0)
        for step in range(steps):
            if stop is not None and stop.is_set():
                result.stopped = True
                break
            ids = windows[step % len(windows)].to(device)
            t0 = time.perf_counter()
            try:
                with GENERATION_QUEUE.admit("distillation", cancel=stop):
                    with torch.no_grad():
                        target = teacher.model(input_ids=ids).logits
                    loss = distillation_loss(student(input_ids=ids).logits, target, temperature)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            except QueueLeft:  # Stop while waiting for a turn
                result.stopped = True
                break
            result.losses.append(float(loss.detach()))
            result.step_seconds.append(time.perf_counter() - t0)
            report(0.1 + 0.85 * (step + 1) / steps, f"Step {step + 1}/{steps}: loss {result.losses[-1]:.4f}")
            if on_step is not None:
                on_step(DistilProgress(step + 1, steps, result.losses[-1], sum(result.step_seconds)))
        del optimizer  # AdamW's states: twice the student's weights
        student.eval()
        report(0.97, "Scoring the distilled student on the held-out text…")
        with GENERATION_QUEUE.admit("distillation"):
            result.distilled = pruning.quality(dense, _logits(student, eval_on_device), eval_ids[0])
        for p in student.parameters():
            p.requires_grad_(False)
        result.student = student
        result.seconds = time.perf_counter() - started
        report(1.0, "Done.")
        return result
    finally:
        _ONE_AT_A_TIME.release()
        gc.collect()
