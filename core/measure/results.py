"""Typed measurement results (frozen dataclasses); component labels come from ``core.plan.peak_memory.components``.

``InferenceMeasurement`` / ``TrainingMeasurement`` / ``FinetuneMeasurement`` hold one measurement, with components
keyed by stable ids (``COMPONENT_LABELS`` maps them to the labels people read). ``to_dict()`` gives the dict the
public functions return, with exactly the keys (and component labels) they always had: notebooks, JSON exports and
the page read those.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.common.units import error_pct
from core.plan.peak_memory.components import labelled


@dataclass(frozen=True)
class _Measurement:
    """Fields every measurement has (the first keys of every result dict)."""
    architecture: str
    model_type: str
    kind: str
    setting: str
    seq_len: int
    batch_size: int
    device: str  # "cpu (AMD EPYC, 2 cores)" / "cuda (NVIDIA H100 …)"
    device_type: str  # "cpu" | "cuda"
    method: str  # how peaks were measured (trackers.*.method)
    n_params: int
    measured_peak_bytes: float
    predicted_peak_bytes: float
    measured_components: tuple[tuple[str, float], ...]  # (component id, bytes)
    predicted_components: tuple[tuple[str, float], ...]
    predicted_phase: str
    reserved_bytes: float | None  # CUDA caching allocator's reserve; None on CPU
    seconds: float

    @property
    def error_pct(self) -> float | None:
        return error_pct(self.predicted_peak_bytes, self.measured_peak_bytes)

    def _head(self, mode: str, **setting) -> dict:
        return {"architecture": self.architecture, "model_type": self.model_type, "kind": self.kind, "mode": mode,
                "setting": self.setting, **setting, "device": self.device, "device_type": self.device_type,
                "method": self.method, "random_weights": True}

    def _peaks(self) -> dict:
        return {"n_params": self.n_params, "measured_peak_bytes": float(self.measured_peak_bytes),
                "predicted_peak_bytes": float(self.predicted_peak_bytes), "error_pct": self.error_pct,
                "measured_components": labelled(dict(self.measured_components)),
                "predicted_components": labelled(dict(self.predicted_components))}


@dataclass(frozen=True)
class InferenceMeasurement(_Measurement):
    """One prefill measured next to its prediction (``measure_inference``)."""
    dtype: str = "fp32"
    textbook_peak_bytes: float = 0.0  # weights + KV cache + the planner's 20 % workspace

    def to_dict(self) -> dict:
        return {**self._head("inference", dtype=self.dtype, seq_len=self.seq_len, batch_size=self.batch_size),
                **self._peaks(), "predicted_phase": self.predicted_phase,
                "textbook_peak_bytes": float(self.textbook_peak_bytes),
                "textbook_error_pct": error_pct(self.textbook_peak_bytes, self.measured_peak_bytes),
                "reserved_bytes": self.reserved_bytes, "seconds": self.seconds}


@dataclass(frozen=True)
class TrainingMeasurement(_Measurement):
    """One steady-state training step measured next to its prediction (``measure_training_step``)."""
    recipe: str = "mixed_precision"
    gradient_checkpointing: bool = False
    measured_gradients_bytes: float = 0.0
    measured_activations_bytes: float = 0.0  # what the forward left allocated (kept for backward)
    measured_phases: tuple[tuple[str, float], ...] = ()  # ("forward" | "backward" | "optimizer step", peak bytes)
    measured_peak_phase: str = ""
    predicted_candidates: tuple[tuple[str, float], ...] = ()
    rule_of_thumb_bytes: float = 0.0  # 24 B/param
    textbook_peak_bytes: float = 0.0  # 16 B/param + Korthikanti activations

    def to_dict(self) -> dict:
        peaks = self._peaks()
        predicted_components = peaks.pop("predicted_components")
        return {**self._head("training step", recipe=self.recipe, seq_len=self.seq_len, batch_size=self.batch_size,
                             gradient_checkpointing=self.gradient_checkpointing),
                **peaks, "measured_gradients_bytes": float(self.measured_gradients_bytes),
                "measured_activations_bytes": float(self.measured_activations_bytes),
                "measured_phases": {k: float(v) for k, v in self.measured_phases},
                "measured_peak_phase": self.measured_peak_phase, "predicted_components": predicted_components,
                "predicted_phase": self.predicted_phase,
                "predicted_candidates": {k: float(v) for k, v in self.predicted_candidates},
                "rule_of_thumb_bytes": float(self.rule_of_thumb_bytes),
                "rule_of_thumb_error_pct": error_pct(self.rule_of_thumb_bytes, self.measured_peak_bytes),
                "textbook_peak_bytes": float(self.textbook_peak_bytes),
                "textbook_error_pct": error_pct(self.textbook_peak_bytes, self.measured_peak_bytes),
                "reserved_bytes": self.reserved_bytes, "seconds": self.seconds}


@dataclass(frozen=True)
class FinetuneMeasurement(_Measurement):
    """One LoRA / QLoRA training step (PEFT) measured next to ``core.finetune.plan_finetune``'s prediction. Its dict
    carries the fine-tuning ``method`` ("lora" / "qlora", as ``measure_finetune_step`` was called) and the
    instrument under ``measurement_method``."""
    finetune_method: str = "lora"
    rank: int = 8
    target_modules: tuple[str, ...] = ()
    base_precision: str = "bf16"
    gradient_checkpointing: bool = False
    trainable_params: int = 0
    measured_phases: tuple[tuple[str, float], ...] = ()
    measured_peak_phase: str = ""

    def to_dict(self) -> dict:
        head = self._head("fine-tune step", rank=self.rank,
                          target_modules=list(self.target_modules), base_precision=self.base_precision,
                          seq_len=self.seq_len, batch_size=self.batch_size,
                          gradient_checkpointing=self.gradient_checkpointing)
        head["measurement_method"] = head.pop("method")
        return {**head, "method": self.finetune_method, **self._peaks(), "trainable_params": self.trainable_params,
                "measured_phases": {k: float(v) for k, v in self.measured_phases},
                "measured_peak_phase": self.measured_peak_phase, "predicted_phase": self.predicted_phase,
                "textbook_peak_bytes": None, "textbook_error_pct": None,
                "reserved_bytes": self.reserved_bytes, "seconds": self.seconds}
