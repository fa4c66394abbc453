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
import random
import tempfile
import threading
import time
import weakref
from pathlib import Path

import torch

from core.finetune.data import DATA_PATH, FinetuneDataset, encode_examples, load_dataset, min_seq_len, pad_batch
from core.finetune.pace import record_pace
from core.finetune.results import ADAPTER_FILES, Comparison, FinetuneProgress, FinetuneResult, FinetuneStep
from core.finetune.settings import (COMPARE_MAX_NEW_TOKENS, DEFAULT_LEARNING_RATES, LIVE_METHODS, TARGET_CHOICES,
                                    FinetuneSettings, bundled_config, check_settings)
from core.plan.finetune import FinetuneError, peft_target_modules
from core.run.generation import last_token_logits
from core.run.models import BUNDLED_DECODER
from core.run.prompts import chat_ids
from core.common.scheduler import GENERATION_QUEUE, QueueLeft

# The run's vocabulary from before the split into data / settings / results stays importable from here.
__all__ = ["ADAPTER_FILES", "COMPARE_MAX_NEW_TOKENS", "DATA_PATH", "DEFAULT_LEARNING_RATES", "LIVE_METHODS",
           "TARGET_CHOICES", "Comparison", "FinetuneBusy", "FinetuneDataset", "FinetuneProgress", "FinetuneResult",
           "FinetuneRun", "FinetuneSettings", "FinetuneStep", "active_run", "bundled_config", "check_settings",
           "encode_examples", "load_dataset", "min_seq_len", "next_token_logits", "start_finetune"]


class FinetuneBusy(RuntimeError):
    """A fine-tune is already running in this process; ``progress`` is its latest ``FinetuneProgress``."""

    def __init__(self, message: str, progress: "FinetuneProgress"):
        super().__init__(message)
        self.progress = progress


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
            batch = {k: v.to(self.device) for k, v in pad_batch(encoded, indices, tokenizer.pad_token_id).items()}
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
    return torch.tensor([chat_ids(tokenizer, prompt)], device=device)


@torch.no_grad()
def _greedy_answer(model, tokenizer, prompt: str, device, max_new_tokens: int) -> str:
    # Greedy decoding draws no random numbers, so no seed (seeding would move the process-wide RNG).
    ids = _prompt_tensor(tokenizer, prompt, device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


def next_token_logits(model, tokenizer, prompt: str, device="cpu") -> torch.Tensor:
    """Logits of the next token after ``prompt`` in the chat template (fp32, on the CPU;
    core.run.generation.last_token_logits)."""
    return last_token_logits(model, _prompt_tensor(tokenizer, prompt, device))
