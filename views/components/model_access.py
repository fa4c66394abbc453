"""The server's model policy (core.run.model_policy) from Streamlit's ``server.address`` and ``[models]`` secrets."""
from __future__ import annotations

import streamlit as st

from core.run import model_policy
from core.run.model_policy import ModelPolicy, ModelPolicyError

# If the operator's settings cannot be read, load nothing but the bundled models (and say why).
_BUNDLED_ONLY = ModelPolicy(any_local_path=False, allow_hub=False, roots=(), exposed=True)


def _models_secrets() -> dict:
    try:
        if not st.secrets.load_if_toml_exists():
            return {}
        section = st.secrets.get("models", {})
        return dict(section) if hasattr(section, "keys") else {}
    except Exception:  # noqa: BLE001 - an unreadable secrets.toml must not take the page down
        return {}


def server_model_policy() -> ModelPolicy:
    """What this server lets its users load: loopback servers anything, exposed ones only what the operator set."""
    try:
        return model_policy.policy_for_server(st.get_option("server.address"), secrets=_models_secrets())
    except ModelPolicyError as exc:
        st.error(f"The server's model settings are invalid ({exc}); only the bundled models can be loaded.")
        return _BUNDLED_ONLY


def model_name_problem(name: str | None) -> str | None:
    """Why this server will not load ``name`` (length, policy), or None: for pages that load through core code
    (e.g. the quantization comparison) rather than ``cached_load_model``."""
    from core.run import models

    resolved = models.canonical_name(name)
    if resolved in (models.BUNDLED_DECODER, models.BUNDLED_ENCODER):
        return None
    try:
        model_policy.resolve_source(resolved, server_model_policy(), models.bundled_folders())
    except ModelPolicyError as exc:
        return (f"{exc} Models that always work offline: the bundled decoder `{models.BUNDLED_DECODER}` and the "
                f"bundled encoder `{models.BUNDLED_ENCODER}`.")
    return None
