"""Old import paths of modules that moved when ``core/`` was regrouped by domain (December 2026).

``import core.memory`` and ``from core import memory`` keep working for one release: each old name is an alias of
the module at its new path (the same module object, so ``core.memory.weights_bytes is
core.plan.memory.weights_bytes``), and importing it warns with a ``DeprecationWarning`` that names the new path.
New code imports the new paths; the map of the packages is ``core/README.md``.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "core.checks": "core.common.checks",
    "core.units": "core.common.units",
    "core.user_text": "core.common.user_text",
    "core.safe_json": "core.common.safe_json",
    "core.scheduler": "core.common.scheduler",
    "core.device": "core.common.device",
    "core.process_memory": "core.common.process_memory",
    "core.architectures": "core.plan.architectures",
    "core.architecture_families": "core.plan.architectures.families",
    "core.plan.architecture_families": "core.plan.architectures.families",
    "core.memory": "core.plan.memory",
    "core.memory_charts": "core.plan.memory_charts",
    "core.memory_tables": "core.plan.memory_tables",
    "core.compute": "core.plan.compute",
    "core.compute_charts": "core.plan.compute_charts",
    "core.compute_tables": "core.plan.compute_tables",
    "core.serving": "core.plan.serving",
    "core.serving_capacity": "core.plan.serving_capacity",
    "core.serving_charts": "core.plan.serving_charts",
    "core.hardware": "core.plan.hardware",
    "core.model_size": "core.plan.model_size",
    "core.published_runs": "core.plan.published_runs",
    "core.training_runs": "core.plan.training_runs",
    "core.finetune.plan": "core.plan.finetune",
    "core.measure.inputs": "core.plan.peak_memory.inputs",
    "core.measure.ledger": "core.plan.peak_memory.ledger",
    "core.measure.predict": "core.plan.peak_memory.predict",
    "core.models": "core.run.models",
    "core.model_policy": "core.run.model_policy",
    "core.prompts": "core.run.prompts",
    "core.generation": "core.run.generation",
    "core.generation_charts": "core.run.generation_charts",
    "core.sampling": "core.run.sampling",
    "core.sampling_charts": "core.run.sampling_charts",
    "core.attention": "core.run.attention",
    "core.attention_charts": "core.run.attention_charts",
    "core.lens": "core.run.lens",
    "core.lens_charts": "core.run.lens_charts",
    "core.quantization": "core.run.quantization",
    "core.quantization_charts": "core.run.quantization_charts",
    "core.speculative": "core.run.speculative",
    "core.branching": "core.run.branching",
    "core.batch_serving": "core.run.batch_serving",
    "core.fast_generation": "core.run.fast_generation",
    "core.device_bench": "core.measure.device_bench",
    "core.endpoints": "core.serve.endpoints",
    "core.load_test": "core.serve.load_test",
    "core.load_test_charts": "core.serve.load_test_charts",
    "core.url_state": "core.io.url_state",
    "core.compute_url": "core.io.compute_url",
    "core.serving_url": "core.io.serving_url",
    "core.plan_io": "core.io.plan_io",
    "core.html_export": "core.io.html_export",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        module = importlib.import_module(self.new)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self.own_spec  # the import system stamped the alias's spec on the shared module


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Serves each old module path in ``MOVED`` as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {new}; the old path goes away in the next release",
                      DeprecationWarning, stacklevel=2)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
