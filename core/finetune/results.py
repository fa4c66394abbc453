"""What a live fine-tune reports: ``FinetuneStep`` (one optimizer step's loss and speed), ``FinetuneProgress`` (where
a run stands, read from any thread), ``Comparison`` (one prompt answered by the base model and by base + adapter)
and ``FinetuneResult`` (what a finished or stopped run leaves, with the adapter as PEFT's files and their zip).

Plain Python (no Streamlit).
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import asdict, dataclass, field

import torch

from core.finetune.settings import FinetuneSettings

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


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
