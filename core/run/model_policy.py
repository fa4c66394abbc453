"""Which models a server may load: the ONE place the operator decides (documented in the README, "Model policy").

Anyone who can open the page can type a model name, and a model name can be a server path. So the person running
the server decides, with environment variables (or Streamlit secrets, ``.streamlit/secrets.toml`` section
``[models]``; an environment variable wins over the secret):

==============================  =============================  ===============================================
environment variable            secrets.toml ``[models]`` key  meaning
==============================  =============================  ===============================================
``LLM_LAB_MODEL_ROOTS``         ``roots`` (list of folders)    folders (and their sub-folders) models may be
                                                               loaded from; ``os.pathsep``-separated (``:``)
``LLM_LAB_ALLOW_HUB``           ``allow_hub`` (bool)           whether Hugging Face Hub ids may be loaded
                                                               (downloaded, or read from the local HF cache)
``LLM_LAB_ANY_LOCAL_PATH``      ``any_local_path`` (bool)      whether ANY server folder may be loaded
==============================  =============================  ===============================================

Defaults depend on where the server listens (Streamlit's ``server.address``, which the page passes in):

* loopback (``127.0.0.1``, ``localhost``, ``::1``; LLM Lab's default): the person at the keyboard owns the machine,
  so any folder and any Hub id may be loaded, and messages say exactly what is wrong (e.g. "does not exist").
* anything else (``0.0.0.0``, a LAN address, or unset = every interface): only the bundled models, folders under
  ``LLM_LAB_MODEL_ROOTS``, and Hub ids if ``LLM_LAB_ALLOW_HUB=1``. A refused name gets one message whether or not
  the path exists, so the page cannot be used to probe the server's disk.

The bundled models (``core.run.models.BUNDLED_DECODER`` / ``BUNDLED_ENCODER``, and their folders) always work, with no
configuration. Plain Python, no Streamlit: pages read ``server.address`` and ``st.secrets`` and pass them in.
"""
from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.common.user_text import code

MAX_MODEL_NAME_CHARS = 1_000  # Hub ids are at most 96 characters; Linux paths up to 4,096 bytes but rarely > 200
ENV_ROOTS = "LLM_LAB_MODEL_ROOTS"
ENV_ALLOW_HUB = "LLM_LAB_ALLOW_HUB"
ENV_ANY_LOCAL_PATH = "LLM_LAB_ANY_LOCAL_PATH"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class ModelPolicyError(ValueError):
    """A model name this server does not load (or cannot read); the message is user-facing."""


@dataclass(frozen=True)
class ModelPolicy:
    """What the server lets its users load. ``exposed`` servers keep their messages from revealing paths."""

    any_local_path: bool
    allow_hub: bool
    roots: tuple[str, ...] = ()
    exposed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"any_local_path": self.any_local_path, "allow_hub": self.allow_hub, "roots": list(self.roots),
                "exposed": self.exposed}

    def describe(self) -> str:
        """What this server accepts, in words (for refusals and help texts)."""
        parts = ["the bundled models"]
        if self.any_local_path:
            parts.append("any local folder")
        elif self.roots:
            parts.append("folders under " + ", ".join(f"`{r}`" for r in self.roots))
        if self.allow_hub:
            parts.append("Hugging Face Hub ids")
        return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


OPEN = ModelPolicy(any_local_path=True, allow_hub=True, roots=(), exposed=False)  # a loopback server's default


def is_loopback(address: str | None) -> bool:
    """Whether Streamlit's ``server.address`` binds only this machine (unset/empty binds every interface)."""
    text = str(address or "").strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def _flag(value, name: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ModelPolicyError(f"{name} must be 1/true or 0/false, got {value!r}.")


def _roots(value) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(os.pathsep) if isinstance(value, str) else list(value)
    return tuple(os.path.realpath(os.path.expanduser(str(item))) for item in items if str(item).strip())


def policy_for_server(server_address: str | None, env: Mapping[str, str] | None = None,
                      secrets: Mapping[str, Any] | None = None) -> ModelPolicy:
    """The policy for a server listening on ``server_address``, from ``env`` (default ``os.environ``) and the
    ``[models]`` section of Streamlit secrets (``secrets``: that section as a mapping)."""
    env = os.environ if env is None else env
    secrets = secrets or {}

    def setting(env_key: str, secret_key: str):
        return env[env_key] if env.get(env_key) not in (None, "") else secrets.get(secret_key)

    exposed = not is_loopback(server_address)
    any_path = _flag(setting(ENV_ANY_LOCAL_PATH, "any_local_path"), ENV_ANY_LOCAL_PATH)
    allow_hub = _flag(setting(ENV_ALLOW_HUB, "allow_hub"), ENV_ALLOW_HUB)
    return ModelPolicy(any_local_path=(not exposed) if any_path is None else any_path,
                       allow_hub=(not exposed) if allow_hub is None else allow_hub,
                       roots=_roots(setting(ENV_ROOTS, "roots")), exposed=exposed)


@dataclass(frozen=True)
class ModelSource:
    """Where a permitted model comes from: ``kind`` "folder" (``location`` is the path) or "hub" (an id)."""

    kind: str
    location: str
    label: str  # for "source" texts


def check_name_text(name) -> str:
    """The name, stripped; ModelPolicyError if it is not text, is too long, or has control characters."""
    if not isinstance(name, str):
        raise ModelPolicyError(f"A model name must be text, got {type(name).__name__}.")
    text = name.strip()
    if len(text) > MAX_MODEL_NAME_CHARS:
        raise ModelPolicyError(f"The model name is {len(text):,} characters long; the limit is "
                               f"{MAX_MODEL_NAME_CHARS:,} (a Hugging Face id or a folder path).")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ModelPolicyError("The model name contains control characters (e.g. a line break); type a Hugging Face "
                               "id or a folder path on one line.")
    return text


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or os.path.isabs(name)


def _under(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives (Windows)
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # e.g. a path component longer than 255 bytes
        return False


def resolve_source(name: str, policy: ModelPolicy = OPEN, bundled_folders: tuple[str | os.PathLike, ...] = ()
                   ) -> ModelSource:
    """Decide where a non-bundled model name is loaded from under ``policy``; ModelPolicyError if it may not be.

    ``bundled_folders``: folders of the bundled models, always allowed (e.g. the bundled encoder's package folder).
    On an exposed server a refused path gets the same message whether it exists or not.
    """
    text = check_name_text(name)
    refused = (f"{code(text)} is not a model this server loads. It accepts {policy.describe()}; the operator sets this "
               f"with {ENV_ROOTS} and {ENV_ALLOW_HUB} (see the README, \"Model policy\").")
    path = Path(text).expanduser()
    if _looks_like_path(text) or (policy.any_local_path and _is_dir(path)):
        real = os.path.realpath(path)
        bundled = {os.path.realpath(f) for f in bundled_folders}
        allowed = policy.any_local_path or real in bundled or any(_under(real, root) for root in policy.roots)
        if not allowed:
            raise ModelPolicyError(refused)
        if not _is_dir(Path(real)):
            if policy.exposed:
                raise ModelPolicyError(refused)
            raise ModelPolicyError(f"The folder {code(text)} does not exist.")
        return ModelSource("folder", real if policy.exposed else str(path), f"local folder {path}")
    if not _HUB_ID.match(text):
        raise ModelPolicyError(f"{code(text)} is neither a Hugging Face id (like `owner/model`) nor a folder path.")
    if not policy.allow_hub:
        raise ModelPolicyError(refused)
    if policy.exposed and os.path.exists(text):
        # transformers would read a same-named relative folder instead of the Hub: not a Hub id on this server.
        raise ModelPolicyError(refused)
    return ModelSource("hub", text, f"Hugging Face Hub id {text}")
