"""Catalog of transformer architectures and exact parameter counts computed from their configs.

Every catalog entry is stored with the keys of the model's real Hugging Face ``config.json`` (incl. ``model_type``), so
``hf_config`` can rebuild it with transformers and ``AutoModelFor*.from_config`` gives a random-weight model of the
same shape. Parameter counts follow each architecture's module layout in transformers' ``modeling_<type>.py``; they equal
``model.num_parameters()`` of the published checkpoint with tied weights counted once (facts and published counts, each
from the model's config.json on the Hugging Face hub: docs/references/architectures.md).

Public API (a contract for the other pages): ``CATALOG``, ``catalog_ids``, ``get_config``, ``param_count``,
``param_breakdown``, ``hf_config``, ``ArchitectureError``. Also: ``linear_layers`` (the matrices a bitsandbytes
quantizer replaces), ``model_kind``, ``display_name``, ``apply_checkpoint_tying``, ``SUPPORTED_MODEL_TYPES``,
``is_supported_model_type``, ``ALIASES_BY_FIELD`` / ``SHAPE_LIMITS`` (used by core.plan.model_size to size configs before loads).

Modules: ``shapes`` (errors, ``LinearLayer``, ``KVGroup``), ``catalog`` (published configs, aliases), ``config``
(normalization of config.json), ``families`` (MoE, MLA and sliding-window/global hybrids), ``params`` (parameter
counts, KV layout) and ``transformers_config`` (transformers interop). Import the names below from this package.
"""
from __future__ import annotations

from core.plan.architectures.catalog import CATALOG, CATALOG_NOTES, catalog_ids, display_name, resolve_id
from core.plan.architectures.config import (ALIAS_KEYS, ALIASES_BY_FIELD, KINDS, SHAPE_LIMITS, SUPPORTED_MODEL_TYPES,
                                            get_config, is_supported_model_type, model_kind)
from core.plan.architectures.params import active_param_count, kv_groups, linear_layers, param_breakdown, param_count
from core.plan.architectures.shapes import ArchitectureError, KVGroup, LinearLayer
from core.plan.architectures.transformers_config import apply_checkpoint_tying, hf_config

__all__ = ["ALIAS_KEYS", "ALIASES_BY_FIELD", "CATALOG", "CATALOG_NOTES", "KINDS", "SHAPE_LIMITS",
           "SUPPORTED_MODEL_TYPES", "ArchitectureError", "KVGroup", "LinearLayer", "active_param_count",
           "apply_checkpoint_tying", "catalog_ids", "display_name", "get_config", "hf_config",
           "is_supported_model_type", "kv_groups", "linear_layers", "model_kind", "param_breakdown", "param_count",
           "resolve_id"]
