"""Prompt preparation and plain generation: the prompt rendered, truncated from the left to fit the context and
checked (bad input is refused here with a user-facing message), the keyword arguments of ``generate()``, and
``generate_text`` / ``next_token_logits`` (over ``last_token_logits``, the one next-token forward pass)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from core.common.scheduler import ENV_MAX_NEW_TOKENS, GENERATION_QUEUE, request_limits
from core.run.batch_serving import batch_server, batching_available
from core.run.models import BUNDLED_DECODER, LoadedModel
from core.run.prompts import RenderedPrompt, render_prompt
from core.run.sampling import CheckedSettings, DecodingSettings, check_settings, pipeline_kwargs


# Model runs take turns through core.common.scheduler's first-come-first-served queue: generate() seeds torch's global RNG,
# so two interleaved runs would break "same seed, same sample" (and on a small CPU they only slow each other down).


class GenerationInputError(ValueError):
    """Input that cannot be generated from (e.g. an empty prompt); the message is user-facing."""


class GenerationError(RuntimeError):
    """generate() itself failed (e.g. out of memory); the message is user-facing."""


# ---------------------------------------------------------------------------------------------------------------------
# Prompt preparation (bad-input handling lives here)


@dataclass
class PreparedPrompt:
    text: str  # exactly what the model reads (after the chat template, before truncation)
    input_ids: torch.Tensor  # (1, n) after any left truncation
    original_tokens: int
    truncated_tokens: int
    max_new_tokens: int  # after clamping to the context window
    context_window: int
    used_chat_template: bool
    notes: list[str] = field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return int(self.input_ids.shape[1])


def _require_generator(loaded: LoadedModel) -> None:
    if loaded is None or loaded.model is None:
        raise GenerationInputError("No model is loaded.")
    if loaded.kind == "encoder":
        raise GenerationInputError(
            f"'{loaded.name}' is an encoder-only model: it has no language-model head and cannot generate text. "
            f"Use a decoder such as the bundled {BUNDLED_DECODER}."
        )


def prepare_prompt(
    loaded: LoadedModel,
    prompt: str,
    max_new_tokens: int,
    use_chat_template: bool = False,
    system_prompt: str | None = None,
    context_window: int | None = None,
) -> PreparedPrompt:
    """Render and tokenize the prompt; clamp max_new_tokens and left-truncate so prompt + generation fit the window.

    Rules: an empty prompt is refused. max_new_tokens is at most half the window when the prompt alone does not
    fit (the prompt then keeps the most recent window − max_new_tokens tokens); otherwise it is clamped to the room
    left after the prompt. Every change is explained in ``notes``.
    """
    _require_generator(loaded)
    if prompt is None or not str(prompt).strip():
        raise GenerationInputError("The prompt is empty: type some text (or build one with the in-context-learning builder).")
    window = int(context_window or loaded.context_window)
    tokenizer = loaded.tokenizer
    chat = use_chat_template and loaded.kind == "decoder"
    rendered: RenderedPrompt = render_prompt(tokenizer, prompt, chat, system_prompt)
    notes = list(rendered.notes)
    if use_chat_template and loaded.kind != "decoder":
        notes.append("Chat templates apply to decoder (chat) models; the prompt is sent as plain text.")
    ids = list(rendered.input_ids)
    if not ids:
        raise GenerationInputError("The prompt produced no tokens; type some text.")
    original = len(ids)

    requested = int(max_new_tokens)
    max_new = max(1, requested)
    if max_new > window - 1:
        max_new = max(1, window - 1)
        notes.append(f"Max new tokens {requested} is beyond the {window}-token context window; clamped to {max_new}.")
    truncated = 0
    if original + max_new > window:
        if original < window:
            new_max = window - original
            notes.append(
                f"Prompt ({original} tokens) + {max_new} new tokens exceed the {window}-token context window; "
                f"max new tokens clamped to {new_max}."
            )
            max_new = new_max
        else:
            if max_new > window // 2:
                notes.append(
                    f"Max new tokens {max_new} lowered to {window // 2} (half the context window) to keep room for the prompt."
                )
                max_new = max(1, window // 2)
            keep = window - max_new
            ids = _truncate_left(tokenizer, rendered, prompt, chat, system_prompt, keep)
            truncated = original - len(ids)
            notes.append(
                f"The prompt has {original} tokens but the context window is {window}: dropped the first "
                f"{truncated} tokens (truncated from the left) so the prompt and {max_new} new tokens fit."
            )
    return PreparedPrompt(
        text=rendered.text,
        input_ids=torch.tensor([ids], dtype=torch.long),
        original_tokens=original,
        truncated_tokens=truncated,
        max_new_tokens=max_new,
        context_window=window,
        used_chat_template=rendered.used_chat_template,
        notes=notes,
    )


def _truncate_left(tokenizer, rendered: RenderedPrompt, prompt: str, chat: bool, system_prompt, keep: int) -> list[int]:
    """Keep the last `keep` tokens. With a chat template, cut the user's text instead so the template stays intact."""
    ids = list(rendered.input_ids)
    if rendered.used_chat_template and chat:
        overflow = len(ids) - keep
        content_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if overflow < len(content_ids):
            shorter = tokenizer.decode(content_ids[overflow:])
            retried = render_prompt(tokenizer, shorter, True, system_prompt).input_ids
            if len(retried) <= keep:
                return list(retried)
    return ids[-keep:]


def prepare_generation(
    loaded: LoadedModel,
    prompt: str,
    settings: DecodingSettings,
    use_chat_template: bool = False,
    system_prompt: str | None = None,
    context_window: int | None = None,
) -> tuple[PreparedPrompt, CheckedSettings]:
    """Check settings and prompt together; the returned settings carry the clamped max_new_tokens."""
    checked = check_settings(settings)
    cap = request_limits().max_new_tokens
    if checked.settings.max_new_tokens > cap:
        checked = CheckedSettings(replace(checked.settings, max_new_tokens=cap), checked.notes + [
            f"Max new tokens {checked.settings.max_new_tokens:,} capped at {cap:,}: this server's per-request limit "
            f"({ENV_MAX_NEW_TOKENS}), so everyone sharing it gets a turn."])
    prepared = prepare_prompt(loaded, prompt, checked.settings.max_new_tokens, use_chat_template, system_prompt, context_window)
    final = replace(checked.settings, max_new_tokens=prepared.max_new_tokens)
    return prepared, CheckedSettings(final, checked.notes + prepared.notes)


def generate_kwargs(loaded: LoadedModel, settings: DecodingSettings) -> dict[str, Any]:
    """Keyword arguments for a plain ``model.generate()`` with these settings (also used by the benchmark)."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": int(settings.max_new_tokens),
        "do_sample": bool(settings.do_sample),
        "num_beams": int(settings.num_beams),
        "repetition_penalty": float(settings.repetition_penalty),
        "pad_token_id": loaded.tokenizer.pad_token_id,
        "max_time": request_limits().max_generation_s,  # per-request wall-time cap (core.common.scheduler)
    }
    if settings.do_sample:
        kwargs.update(temperature=float(settings.temperature), top_k=int(settings.top_k), top_p=float(settings.top_p))
    kwargs.update(pipeline_kwargs(settings))  # min-p, typical, ε, η, no-repeat n-gram, temperature placement
    return kwargs


def model_inputs(loaded: LoadedModel, prepared: PreparedPrompt) -> dict[str, torch.Tensor]:
    input_ids = prepared.input_ids.to(loaded.device)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def last_token_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """A causal LM's raw logits for the token after ``input_ids`` (1, n): one forward pass without gradients, shape
    (vocab,), fp32 on the CPU. The one home of this forward pass: ``next_token_logits`` below, and the distillation's
    and fine-tuning's own ``next_token_logits`` (which tokenize their prompt their way first), call it."""
    inputs = {"input_ids": input_ids} if attention_mask is None else {"input_ids": input_ids,
                                                                      "attention_mask": attention_mask}
    with torch.no_grad():
        return model(**inputs).logits[0, -1].float().cpu()


def next_token_logits(loaded: LoadedModel, prepared: PreparedPrompt) -> torch.Tensor:
    """The model's raw logits for the token right after the prompt: one forward pass, shape (vocab,), fp32 on the CPU.

    The same forward pass generate() starts with (its prefill), so ``core.run.sampling.shape_distribution`` can redraw
    this distribution under any settings without running the model again.
    """
    _require_generator(loaded)
    if loaded.kind != "decoder":
        raise GenerationInputError(f"'{loaded.name}' is not a decoder (causal LM); its next-token logits need a decoder input.")
    return last_token_logits(loaded.model, **model_inputs(loaded, prepared))


def new_tokens(loaded: LoadedModel, prepared: PreparedPrompt, sequences: torch.Tensor) -> list[int]:
    if loaded.kind == "encoder-decoder":
        return sequences[0, 1:].tolist()  # drop the decoder start token
    return sequences[0, prepared.prompt_tokens:].tolist()


def eos_ids(loaded: LoadedModel) -> set[int]:
    eos = getattr(loaded.model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = loaded.tokenizer.eos_token_id
    if eos is None:
        return set()
    return set(eos) if isinstance(eos, (list, tuple)) else {int(eos)}


def generate_text(
    loaded: LoadedModel,
    prompt: str,
    max_new_tokens: int = 20,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 50,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    num_beams: int = 1,
    seed: int = 0,
    use_chat_template: bool = False,
    min_p: float = 0.0,
    typical_p: float = 1.0,
    epsilon_cutoff: float = 0.0,
    eta_cutoff: float = 0.0,
    no_repeat_ngram_size: int = 0,
    temperature_last: bool = False,
) -> str:
    """The completion only (prompt excluded, special tokens skipped), from a plain ``model.generate()`` in turn with
    other sessions — or, greedy on a CUDA GPU, served together with them in a continuous batch (core.run.batch_serving)."""
    settings = DecodingSettings(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
                                repetition_penalty=repetition_penalty, num_beams=num_beams,
                                max_new_tokens=max_new_tokens, seed=seed, min_p=min_p, typical_p=typical_p,
                                epsilon_cutoff=epsilon_cutoff, eta_cutoff=eta_cutoff,
                                no_repeat_ngram_size=no_repeat_ngram_size, temperature_last=temperature_last)
    prepared, checked = prepare_generation(loaded, prompt, settings, use_chat_template)
    if checked.settings.mode == "greedy" and batching_available(loaded)[0]:  # GPU: share a continuous batch
        served = batch_server(loaded).generate(prepared.input_ids[0].tolist(), checked.settings.max_new_tokens)
        if served.error:
            raise GenerationError(f"Generation failed: {served.error}")
        return loaded.tokenizer.decode(served.token_ids, skip_special_tokens=True)
    with GENERATION_QUEUE.admit("generate_text"):
        torch.manual_seed(checked.settings.seed)
        sequences = loaded.model.generate(**model_inputs(loaded, prepared), **generate_kwargs(loaded, checked.settings))
    return loaded.tokenizer.decode(new_tokens(loaded, prepared, sequences), skip_special_tokens=True)
