"""Run a LoRA or prompt-tuning fine-tune live on the bundled SmolLM2: a worker thread that trains step by step, then
answers the same prompts with the base model and with base + adapter, and hands back the adapter as PEFT's
safetensors.

- LoRA itself is PEFT's (``peft.LoraConfig`` / ``get_peft_model``; Hu et al. 2021, "LoRA: Low-Rank Adaptation of
  Large Language Models", §4.1): the base stays frozen, only A (r × d_in) and B (d_out × r) of each targeted matrix
  train, and the update is scaled by alpha / r.
- Prompt tuning is PEFT's too (``peft.PromptTuningConfig``; Lester et al. 2021, "The Power of Scale for
  Parameter-Efficient Prompt Tuning", §2): the whole model stays frozen and only ``num_virtual_tokens`` soft-prompt
  embeddings, prepended to every input, train (initialised from randomly sampled vocabulary embeddings, ibid. §3.2).
- The loss is the causal-LM cross-entropy of transformers' ``LlamaForCausalLM`` on the answer tokens only (prompt
  tokens get the label -100, which ``torch.nn.CrossEntropyLoss`` ignores), optimised with ``torch.optim.AdamW``
  (Loshchilov & Hutter 2019) at a constant learning rate.
- One run at a time per process (``start_finetune`` refuses a second one with the running one's progress, the same
  one-at-a-time policy as core.run.generation's lock, but refusing instead of waiting since a run lasts minutes). Each
  run loads its own copy of the model, so the shared one the other pages use is never modified, and drops it when
  it ends (``FinetuneRun.model_released``).

Plain Python (no Streamlit).
"""
from __future__ import annotations

import gc
import io
import json
import math
import random
import tempfile
import threading
import time
import weakref
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from core.finetune.pace import record_pace
from core.plan.finetune import PROMPT_TUNING, FinetuneError, peft_target_modules, plan_finetune
from core.run.models import BUNDLED_DECODER
from core.common.scheduler import GENERATION_QUEUE, QueueLeft
from core.common.paths import DATA_DIR

DATA_PATH = DATA_DIR / "finetune_pirate.json"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
TARGET_CHOICES = ("attention", "mlp", "all-linear")
COMPARE_MAX_NEW_TOKENS = 40
LIVE_METHODS = ("lora", "prompt-tuning")
# Soft prompts need larger steps than LoRA (Lester et al. train them at 0.3 with Adafactor); 0.03 with AdamW learns
# the bundled template in the default 12 steps here.
DEFAULT_LEARNING_RATES = {"lora": 2e-3, "prompt-tuning": 3e-2}


class FinetuneBusy(RuntimeError):
    """A fine-tune is already running in this process; ``progress`` is its latest ``FinetuneProgress``."""

    def __init__(self, message: str, progress: "FinetuneProgress"):
        super().__init__(message)
        self.progress = progress


# ---------------------------------------------------------------------------------------------------------------
# Data set
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FinetuneDataset:
    """The bundled data set: (prompt, response) pairs, held-out comparison prompts, its licence and source."""
    name: str
    licence: str
    source: str
    examples: tuple[tuple[str, str], ...]
    comparison_prompts: tuple[str, ...]


def load_dataset(path: Path | str = DATA_PATH) -> FinetuneDataset:
    """Read the bundled fine-tuning set (``core/data/finetune_pirate.json``, CC0)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return FinetuneDataset(raw["name"], raw["licence"], raw["source"],
                           tuple((e["prompt"], e["response"]) for e in raw["examples"]),
                           tuple(raw["comparison_prompts"]))


def _chat_prompt_ids(tokenizer, prompt: str) -> list[int]:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                        add_generation_prompt=True)
    return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


def encode_examples(tokenizer, examples, seq_len: int) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per example in the model's chat template, cut to ``seq_len`` tokens; the prompt's labels
    are -100 so only the answer (and its end-of-turn token) is learned."""
    out = []
    for prompt, response in examples:
        prompt_ids = _chat_prompt_ids(tokenizer, prompt)
        answer_ids = tokenizer(response + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + answer_ids)[:seq_len]
        labels = ([-100] * len(prompt_ids) + answer_ids)[:seq_len]
        if any(label != -100 for label in labels):
            out.append((ids, labels))
    return out


def _batch(encoded, indices, pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(encoded[i][0]) for i in indices)
    ids, labels, mask = [], [], []
    for i in indices:
        x, y = encoded[i]
        pad = width - len(x)
        ids.append(x + [pad_id] * pad)
        labels.append(y + [-100] * pad)
        mask.append([1] * len(x) + [0] * pad)
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


# ---------------------------------------------------------------------------------------------------------------
# Settings and checks
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FinetuneSettings:
    """One live run. Defaults show the answer template within ~2 minutes on 2 free CPU cores (6 steps of batch 4
    already did on this machine; see the README)."""
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("attention",)
    learning_rate: float = 2e-3
    steps: int = 12
    seq_len: int = 80  # the longest bundled example is 67 tokens in the chat template
    batch_size: int = 4
    seed: int = 0
    compare_max_new_tokens: int = COMPARE_MAX_NEW_TOKENS  # greedy tokens per comparison answer
    method: str = "lora"  # or "prompt-tuning" (then rank, alpha, dropout and target_modules are not used)
    num_virtual_tokens: int = 20  # prompt tuning's soft tokens

    def to_dict(self) -> dict:
        return asdict(self)


def check_settings(settings: FinetuneSettings, config=None, free_bytes: float | None = None,
                   device_type: str = "cpu") -> dict:
    """Validate ``settings`` for the bundled model and predict the run's peak memory with ``plan_finetune``.

    Raises FinetuneError with a clear message for a rank of 0 or above the smallest adapted layer, no target module
    of the model, out-of-range numbers, or a predicted peak above ``free_bytes`` (default: free memory of the
    device, ``core.plan.hardware.free_device_memory_bytes``). Returns the plan (``plan_finetune``'s dict) with
    ``required_bytes``: the plan is for a 16-bit frozen base, and this run keeps the base and its activations in
    fp32, so the required memory is bounded by twice the plan's peak.
    """
    s = settings
    if config is None:
        config = bundled_config()
    if not (isinstance(s.learning_rate, (int, float)) and math.isfinite(s.learning_rate) and 0 < s.learning_rate <= 1):
        raise FinetuneError(f"Learning rate must be in (0, 1], got {s.learning_rate!r}.")
    if s.method not in LIVE_METHODS:
        raise FinetuneError(f"Unknown method {s.method!r}: use one of {', '.join(LIVE_METHODS)}.")
    lora = s.method == "lora"
    if lora and not (isinstance(s.alpha, (int, float)) and math.isfinite(s.alpha) and s.alpha > 0):
        raise FinetuneError(f"LoRA alpha must be a positive number, got {s.alpha!r}.")
    if not lora and (isinstance(s.num_virtual_tokens, bool) or not isinstance(s.num_virtual_tokens, int)
                     or not 1 <= s.num_virtual_tokens <= 256):
        raise FinetuneError(f"Virtual tokens must be a whole number from 1 to 256, got {s.num_virtual_tokens!r}.")
    if isinstance(s.steps, bool) or not isinstance(s.steps, int) or not 1 <= s.steps <= 10_000:
        raise FinetuneError(f"Steps must be a whole number from 1 to 10,000, got {s.steps!r}.")
    if isinstance(s.compare_max_new_tokens, bool) or not isinstance(s.compare_max_new_tokens, int) or not (
            1 <= s.compare_max_new_tokens <= 512):
        raise FinetuneError("Comparison answers must be 1 to 512 tokens long, got "
                            f"{s.compare_max_new_tokens!r}.")
    shortest = min_seq_len()
    if isinstance(s.seq_len, int) and not isinstance(s.seq_len, bool) and s.seq_len < shortest:
        raise FinetuneError(f"Sequence length {s.seq_len} tokens is too short: the shortest bundled example's prompt "
                            f"takes {shortest - 1} tokens in the chat template, leaving no answer to learn. Use at "
                            f"least {shortest} tokens (80 keeps every answer whole).")
    if lora:
        plan = plan_finetune(config, "lora", s.rank, list(s.target_modules), s.seq_len, s.batch_size,
                             optimizer="adamw", dropout=float(s.dropout), device_type=device_type)
    else:
        plan = plan_finetune(config, PROMPT_TUNING, None, None, s.seq_len, s.batch_size, optimizer="adamw",
                             device_type=device_type, num_virtual_tokens=s.num_virtual_tokens)
    plan["required_bytes"] = 2.0 * plan["total_bytes"]  # the plan is for a 16-bit base; this run is fp32 here
    if free_bytes is None:
        from core.plan.hardware import free_device_memory_bytes
        free_bytes = free_device_memory_bytes(device_type)
    plan["free_bytes"] = float(free_bytes)
    if plan["required_bytes"] > free_bytes:
        raise FinetuneError(
            f"This run would not fit: predicted peak {plan['total_bytes'] / 1e9:,.2f} GB for a 16-bit base (up to "
            f"{plan['required_bytes'] / 1e9:,.2f} GB in fp32 on this device, {plan['trainable_params']:,} trainable "
            f"parameters) but only {free_bytes / 1e9:,.2f} GB is free. Lower the sequence length or batch size.")
    return plan


_CONFIG_CACHE: dict = {}


def min_seq_len() -> int:
    """Fewest tokens a training sequence needs to hold one answer token of the bundled data set (its shortest prompt
    in the chat template, plus one)."""
    if "min_seq_len" not in _CONFIG_CACHE:
        from core.run.models import load_tokenizer
        tokenizer = load_tokenizer(BUNDLED_DECODER)
        _CONFIG_CACHE["min_seq_len"] = 1 + min(len(_chat_prompt_ids(tokenizer, p)) for p, _ in load_dataset().examples)
    return _CONFIG_CACHE["min_seq_len"]


def bundled_config() -> dict:
    """The bundled decoder's config as a dict (for ``plan_finetune``), read once from its converted folder."""
    if "config" not in _CONFIG_CACHE:
        from core.run.models import ensure_bundled_decoder
        _CONFIG_CACHE["config"] = json.loads((ensure_bundled_decoder() / "config.json").read_text())
    return dict(_CONFIG_CACHE["config"])


# ---------------------------------------------------------------------------------------------------------------
# Progress and results
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FinetuneStep:
    """One optimizer step: its loss (nats/token over the answer tokens), tokens processed and speed."""
    step: int
    loss: float
    tokens: int
    step_s: float
    elapsed_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.step_s if self.step_s > 0 else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"tokens_per_s": self.tokens_per_s}


@dataclass(frozen=True)
class FinetuneProgress:
    """Where a run stands: ``phase`` is "loading", "training", "comparing", "done", "stopped" or "error"."""
    phase: str
    step: int
    total_steps: int
    loss: float | None
    tokens_per_s: float | None
    elapsed_s: float
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.phase in ("done", "stopped", "error")

    def describe(self, phase: bool = True) -> str:
        """'training, step 3/12, loss 3.387, 210 tokens/s, 5 s elapsed' (without the phase: from 'step')."""
        parts = ([self.phase] if phase else []) + [f"step {self.step}/{self.total_steps}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:,.0f} tokens/s")
        parts.append(f"{self.elapsed_s:,.0f} s elapsed")
        return ", ".join(parts)

    def status_line(self) -> str:
        """The progress bar's label: the message, then the numbers, the state said once ('Training… step 3/12, …',
        'Finished: step 12/12, …'; not 'Training… training, …')."""
        head = (self.message or self.phase.capitalize()).rstrip(".")
        return f"{head}{' ' if head.endswith('…') else ': '}{self.describe(phase=False)}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """One prompt answered greedily by the base model and by base + adapter."""
    prompt: str
    base: str
    adapted: str


@dataclass(frozen=True)
class FinetuneResult:
    """What a finished (or stopped) run leaves: steps, answers side by side, the adapter files (bytes)."""
    settings: FinetuneSettings
    steps: tuple[FinetuneStep, ...]
    stopped: bool
    train_s: float
    trainable_params: int
    comparisons: tuple[Comparison, ...]
    adapter_files: dict = field(default_factory=dict)  # file name -> bytes (PEFT save_pretrained output)
    probe_logits: torch.Tensor | None = None  # adapted model's next-token logits on the first comparison prompt

    @property
    def first_loss(self) -> float | None:
        return self.steps[0].loss if self.steps else None

    @property
    def last_loss(self) -> float | None:
        return self.steps[-1].loss if self.steps else None

    @property
    def tokens_per_s(self) -> float:
        tokens = sum(s.tokens for s in self.steps)
        return tokens / self.train_s if self.train_s > 0 else 0.0

    def adapter_zip(self) -> bytes:
        """The adapter as a zip of PEFT's ``adapter_model.safetensors`` and ``adapter_config.json``."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in self.adapter_files.items():
                archive.writestr(name, data)
        return buffer.getvalue()

    def to_dict(self) -> dict:
        return {"settings": self.settings.to_dict(), "steps": [s.to_dict() for s in self.steps],
                "stopped": self.stopped, "train_s": self.train_s, "trainable_params": self.trainable_params,
                "tokens_per_s": self.tokens_per_s, "first_loss": self.first_loss, "last_loss": self.last_loss,
                "comparisons": [asdict(c) for c in self.comparisons]}


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------
_ADMISSION = threading.Lock()
_ACTIVE: list["FinetuneRun"] = []  # the running run, if any


def active_run() -> "FinetuneRun | None":
    """The run training in this process now, or None."""
    with _ADMISSION:
        return next((r for r in _ACTIVE if not r.progress().finished), None)


def start_finetune(settings: FinetuneSettings, *, device: str = "auto", free_bytes: float | None = None,
                   load=None) -> "FinetuneRun":
    """Check ``settings`` (``check_settings``), then start a run in a worker thread and return it at once.

    Raises FinetuneError for bad input (nothing is started) and FinetuneBusy, with the running run's progress, when
    another run is training in this process. ``load`` (default ``core.run.models.load_model``) loads a fresh copy of the
    bundled decoder for this run.
    """
    from core.run.models import select_device

    dev = select_device(device)
    plan = check_settings(settings, free_bytes=free_bytes, device_type="cuda" if dev.type == "cuda" else "cpu")
    with _ADMISSION:
        running = next((r for r in _ACTIVE if not r.progress().finished), None)
        if running is not None:
            p = running.progress()
            raise FinetuneBusy(f"Another fine-tune is running ({p.describe()}). One runs at a time on this machine: "
                               "wait for it to finish, then start yours.", p)
        run = FinetuneRun(settings, dev, plan, load)
        _ACTIVE[:] = [run]
    run._thread.start()
    return run


class FinetuneRun:
    """A LoRA run in a worker thread. ``progress()`` and ``steps()`` are safe to read from any thread; ``stop()``
    ends training after the current step (the adapter trained so far is still compared and saved); ``wait()``
    blocks until the run ends and returns its ``FinetuneResult`` (None after an error: see ``error``)."""

    def __init__(self, settings: FinetuneSettings, device: torch.device, plan: dict, load=None):
        self.settings = settings
        self.device = device
        self.plan = plan
        self._load = load
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._steps: list[FinetuneStep] = []
        self._phase = "loading"
        self._message = "Loading a fresh copy of SmolLM2…"
        self._started = time.perf_counter()
        self._ended: float | None = None
        self._model_ref = None
        self.result: FinetuneResult | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, args=(torch.get_num_threads(),), daemon=True,
                                        name="llm-lab-finetune")

    # -- reading from other threads ---------------------------------------------------------------------------
    def progress(self) -> FinetuneProgress:
        with self._lock:
            last = self._steps[-1] if self._steps else None
            end = self._ended if self._ended is not None else time.perf_counter()
            return FinetuneProgress(self._phase, len(self._steps), self.settings.steps,
                                    last.loss if last else None, last.tokens_per_s if last else None,
                                    end - self._started, self._message)

    def steps(self) -> list[FinetuneStep]:
        with self._lock:
            return list(self._steps)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> FinetuneResult | None:
        self._done.wait(timeout)
        return self.result

    @property
    def model_released(self) -> bool:
        """True once the run's model (and its adapters, gradients and optimizer states) is gone."""
        gc.collect()
        return self._model_ref is None or self._model_ref() is None

    # -- the worker ---------------------------------------------------------------------------------------------
    def _set(self, phase: str, message: str = "") -> None:
        with self._lock:
            self._phase, self._message = phase, message

    def _run(self, threads: int) -> None:
        torch.set_num_threads(threads)
        try:
            self.result = self._train_and_compare()
            self._set("stopped" if self.result.stopped else "done",
                      f"Stopped after {len(self.result.steps)} steps." if self.result.stopped else "Finished.")
        except BaseException as exc:  # noqa: BLE001 - reported through progress()
            self.error = f"{type(exc).__name__}: {exc}"
            self._set("error", f"The fine-tune failed: {self.error}")
        finally:
            gc.collect()
            with self._lock:
                self._ended = time.perf_counter()
            self._done.set()

    def _train_and_compare(self) -> FinetuneResult:
        from peft import LoraConfig, PromptTuningConfig, get_peft_model

        from core.run.models import load_model

        s = self.settings
        loaded = (self._load or load_model)(BUNDLED_DECODER, dtype="fp32", device=str(self.device))
        tokenizer, model = loaded.tokenizer, loaded.model
        del loaded
        if s.method == "prompt-tuning":
            config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=s.num_virtual_tokens,
                                        prompt_tuning_init="SAMPLE_VOCAB")
        else:
            config = LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, bias="none",
                                target_modules=peft_target_modules(bundled_config(), list(s.target_modules)),
                                task_type="CAUSAL_LM")
        # Seeding torch's global RNG (for the adapters' random init) is process-wide: take a turn so a sampling
        # generation in another session neither moves nor is moved by it. QueueLeft (stop pressed while waiting)
        # ends the run like a stop before the first step.
        try:
            with GENERATION_QUEUE.admit("finetune", cancel=self._stop):
                torch.manual_seed(s.seed)
                model = get_peft_model(model, config)
        except QueueLeft:
            del model
            return FinetuneResult(s, (), True, 0.0, 0, ())
        self._model_ref = weakref.ref(model)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        data = load_dataset()
        encoded = encode_examples(tokenizer, data.examples, s.seq_len)
        if not encoded:
            raise FinetuneError(f"Sequence length {s.seq_len} leaves no answer tokens to learn.")
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s.learning_rate,
                                      weight_decay=0.0)
        order = list(range(len(encoded)))
        rng = random.Random(s.seed)
        rng.shuffle(order)
        cursor = 0
        model.train()
        self._set("training", "Training…")
        train_started = time.perf_counter()
        for step in range(1, s.steps + 1):
            if self._stop.is_set():
                break
            indices = []
            for _ in range(s.batch_size):
                if cursor == len(order):
                    rng.shuffle(order)
                    cursor = 0
                indices.append(order[cursor])
                cursor += 1
            batch = {k: v.to(self.device) for k, v in _batch(encoded, indices, tokenizer.pad_token_id).items()}
            t0 = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            now = time.perf_counter()
            event = FinetuneStep(step, value, int(batch["attention_mask"].sum()), now - t0, now - train_started)
            with self._lock:
                self._steps.append(event)
            del loss, batch
        train_s = time.perf_counter() - train_started
        stopped = len(self._steps) < s.steps
        record_pace(s.method, self.device.type, self.steps(), s.batch_size)  # the next run's time estimate
        del optimizer
        if not self._steps:  # stopped while loading: nothing trained, nothing to compare or save
            del model
            return FinetuneResult(s, (), True, train_s, trainable, ())
        model.eval()

        self._set("comparing", "Answering the comparison prompts with the base model and with the adapter…")
        comparisons = []
        probe = None
        # One short turn per prompt in the shared model-work queue, so generations of other sessions interleave;
        # QueueLeft (stop pressed while waiting for a turn) skips the remaining prompts, the adapter is still saved.
        for i, prompt in enumerate(data.comparison_prompts):
            try:
                with GENERATION_QUEUE.admit("finetune", cancel=self._stop):
                    with model.disable_adapter():
                        base = _greedy_answer(model, tokenizer, prompt, self.device, s.compare_max_new_tokens)
                    adapted = _greedy_answer(model, tokenizer, prompt, self.device, s.compare_max_new_tokens)
                    if i == 0:
                        probe = next_token_logits(model, tokenizer, prompt, self.device)
            except QueueLeft:
                stopped = True
                break
            comparisons.append(Comparison(prompt, base, adapted))

        self._set("comparing", "Saving the adapter…")
        with tempfile.TemporaryDirectory(prefix="llm-lab-adapter-") as folder:
            model.save_pretrained(folder)
            files = {name: (Path(folder) / name).read_bytes() for name in ADAPTER_FILES}
        steps = tuple(self.steps())
        del model
        return FinetuneResult(s, steps, stopped, train_s, trainable, tuple(comparisons), files, probe)


def _prompt_tensor(tokenizer, prompt: str, device) -> torch.Tensor:
    return torch.tensor([_chat_prompt_ids(tokenizer, prompt)], device=device)


@torch.no_grad()
def _greedy_answer(model, tokenizer, prompt: str, device, max_new_tokens: int) -> str:
    # Greedy decoding draws no random numbers, so no seed (seeding would move the process-wide RNG).
    ids = _prompt_tensor(tokenizer, prompt, device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


@torch.no_grad()
def next_token_logits(model, tokenizer, prompt: str, device="cpu") -> torch.Tensor:
    """Logits of the next token after ``prompt`` in the chat template (fp32, on the CPU)."""
    ids = _prompt_tensor(tokenizer, prompt, device)
    return model(input_ids=ids).logits[0, -1].float().cpu()
