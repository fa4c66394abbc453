"""Endpoint runtime UI: choose an operator-configured OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama),
probe what it honours, and generate on it (streamed, per-token view from the server's logprobs) or compare settings.

Used by views/generate.py (runtime choice), views/serving_load.py and the Quantization page's served-model row.
API keys stay inside core.serve.endpoints.Endpoint: nothing here writes one to the page, the URL or a download.
"""
from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from core.serve import endpoints as E
from core.serve.capabilities import Capabilities, probe
from core.serve.endpoint_generation import generate, stream_generate
from core.run.generation_charts import (
    color_legend_html,
    colored_tokens_html,
    compare_figure,
    probability_timeline_figure,
    step_distribution_figure,
    step_table_rows,
)
from core.run.sampling import DECODING_MODES, DecodingSettings, generation_config_defaults
from core.common.user_text import code, escape_markdown

RUNTIMES = ("Local model (transformers)", "Endpoint (OpenAI-compatible server)")
RUNTIME_HELP = ("Local: the model runs inside this app's process. Endpoint: a server the operator configured "
                "(vLLM, SGLang, TGI, llama.cpp's server, Ollama…) generates; LLM Lab streams its tokens and log-probs.")
CUSTOM = "Custom URL…"
PROBE_TTL_S = 30.0
DEFAULTS = generation_config_defaults()


def _secrets_entries() -> list[dict]:
    try:
        entries = st.secrets.get("endpoints", [])
    except Exception:  # noqa: BLE001 - no secrets.toml at all is the normal case
        return []
    return [dict(e) for e in entries] if isinstance(entries, (list, tuple)) else []


def select_endpoint(key: str) -> E.Endpoint | None:
    """A selectbox of the configured endpoints (plus a free-form URL only when the operator allows it); shows a
    clear message and returns None when there is nothing usable."""
    try:
        configured = E.configured_endpoints(_secrets_entries())
    except E.EndpointError as exc:
        st.error(f"The endpoint configuration is invalid: {escape_markdown(exc)}", icon=":material/settings:")
        configured = []
    allow_custom = E.custom_urls_allowed()
    names = [e.name for e in configured] + ([CUSTOM] if allow_custom else [])
    if not names:
        st.info(
            f"No endpoint is configured. The operator lists servers in the `{E.ENDPOINTS_ENV}` environment variable "
            '(JSON: `[{"name": "vllm", "base_url": "http://127.0.0.1:8000/v1", "model": "smollm2", '
            '"api_key_env": "VLLM_API_KEY"}]`) or under `endpoints` in `.streamlit/secrets.toml`.',
            icon=":material/dns:",
        )
        return None
    choice = st.selectbox("Endpoint", names, key=f"{key}_endpoint",
                          help="Servers configured by whoever runs LLM Lab. The API key (if any) stays on the server side.")
    if choice != CUSTOM:
        endpoint = next(e for e in configured if e.name == choice)
        st.caption(f"{code(endpoint.model)} at {code(endpoint.api_base)}")
        return endpoint
    cols = st.columns([3, 2])
    url = cols[0].text_input("Server URL", key=f"{key}_custom_url", placeholder="http://127.0.0.1:8000/v1",
                             help="Base URL of an OpenAI-compatible server (allowed by this deployment's operator).")
    model = cols[1].text_input("Model name", key=f"{key}_custom_model", placeholder="smollm2",
                               help="The name the server serves the model under (its /v1/models list).")
    if not url.strip() or not model.strip():
        st.caption("Enter the server URL and the model name.")
        return None
    try:
        return E.custom_endpoint(url, model)
    except E.EndpointError as exc:
        st.error(escape_markdown(exc), icon=":material/link_off:")
        return None


def probe_or_error(endpoint: E.Endpoint) -> Capabilities | None:
    """The server's capabilities (cached per session for PROBE_TTL_S), or None after showing why it is unusable."""
    cache = st.session_state.setdefault("_endpoint_probes", {})
    cache_key = (endpoint.name, endpoint.base_url, endpoint.model)
    hit = cache.get(cache_key)
    if hit is not None and time.monotonic() - hit[0] < PROBE_TTL_S:
        return hit[1]
    try:
        capabilities = probe(endpoint)
    except E.EndpointError as exc:
        cache.pop(cache_key, None)
        st.error(escape_markdown(exc), icon=":material/cloud_off:")
        return None
    cache[cache_key] = (time.monotonic(), capabilities)
    return capabilities


def _server_caption(capabilities: Capabilities) -> None:
    kind = "vLLM" if capabilities.is_vllm else "an OpenAI-compatible server (not vLLM)"
    length = f" · context {capabilities.max_model_len:,} tokens" if capabilities.max_model_len else ""
    st.caption(f"Server: {kind} · up to {capabilities.max_logprobs} alternatives per token{length}")


def _settings_controls(key: str, capabilities: Capabilities, compact: bool = False,
                       preset: tuple = ("greedy", 1.0, 50, 1.0)) -> tuple[DecodingSettings, int]:
    unsupported = capabilities.unsupported()
    modes = [m for m in DECODING_MODES if m != "beam search" or "beam search" not in unsupported]
    mode = st.selectbox("Decoding", modes, index=modes.index(preset[0]) if preset[0] in modes else 0,
                        key=f"{key}_mode",
                        help="Greedy: temperature 0. Sampling: draw from the reshaped distribution"
                             + (f". Beam search: {unsupported['beam search']}." if "beam search" in unsupported else "."))
    sampling = mode == "sampling"
    cols = st.columns(1 if compact else 4)
    temperature = cols[0].slider("Temperature", 0.0, 2.0, float(preset[1]), 0.05, key=f"{key}_temperature",
                                 disabled=not sampling, help="Divides the logits before softmax; sent as `temperature`.")
    top_k_reason = unsupported.get("top_k")
    top_k = cols[0 if compact else 1].number_input(
        "Top-k", 0, 1000, int(preset[2]), 1, key=f"{key}_top_k", disabled=not sampling or bool(top_k_reason),
        help="Sample among the k most likely tokens (0 = no limit); sent as vLLM's `top_k`."
             + (f" Disabled: {top_k_reason}." if top_k_reason else ""))
    top_p = cols[0 if compact else 2].slider("Top-p", 0.0, 1.0, float(preset[3]), 0.01, key=f"{key}_top_p",
                                             disabled=not sampling, help="Nucleus sampling; sent as `top_p`.")
    penalty_reason = unsupported.get("repetition_penalty")
    penalty = 1.0
    if not compact:
        penalty = cols[3].slider(
            "Repetition penalty", 0.5, 2.0, 1.0, 0.05, key=f"{key}_penalty", disabled=bool(penalty_reason),
            help="Above 1 makes tokens already in the text less likely (CTRL, Keskar et al. 2019); sent as vLLM's "
                 "`repetition_penalty`." + (f" Disabled: {penalty_reason}." if penalty_reason else ""))
    for control, reason in unsupported.items():
        if control != "beam search" and not compact:
            st.caption(f":material/block: {control.replace('_', ' ')} is disabled: {reason}.")
    return DecodingSettings.for_mode(mode, temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                                     repetition_penalty=float(penalty)), capabilities.max_logprobs


def _show_result(result, key: str) -> None:
    for note in result.notes:
        st.info(note, icon=":material/info:")
    if not result.steps:
        st.warning("The server returned no tokens.")
        return
    n = len(result.steps)
    index = st.slider("Inspect step", 0, n - 1, 0, key=f"{key}_step",
                      help="Pick a generated token to see the alternatives the server reported for it.") if n > 1 else 0
    st.markdown(colored_tokens_html(result.steps, selected=index), unsafe_allow_html=True)
    st.markdown(color_legend_html(), unsafe_allow_html=True)
    cols = st.columns(4)
    cols[0].metric("Time to first token", f"{result.ttft_s * 1000:,.0f} ms" if result.ttft_s is not None else "—",
                   help="From sending the request to the first streamed token (network + queue + prefill).")
    rate = result.decode_tokens_per_s
    cols[1].metric("Speed", f"{rate:,.1f} tokens/s" if rate else "—",
                   help="Tokens per second after the first one, as they arrived over the stream.")
    cols[2].metric("Generated", f"{result.new_tokens} tokens", help="New tokens (the prompt is not counted).")
    cols[3].metric("Prompt", f"{result.prompt.prompt_tokens} tokens", help="Prompt length as the server counted it.")
    step = result.steps[index]
    left, right = st.columns(2)
    left.plotly_chart(step_distribution_figure(step), width="stretch", key=f"{key}_step_chart")
    right.caption("The server's log-probabilities are the model's own distribution (vLLM's default), so all three "
                  "stages show the same numbers; alternatives are named by their text.")
    right.dataframe(pd.DataFrame(step_table_rows(step)), hide_index=True, height=340)
    st.plotly_chart(probability_timeline_figure(result.steps), width="stretch", key=f"{key}_timeline")
    dl = st.columns(2)
    dl[0].download_button("Download steps (CSV)", pd.DataFrame([s.to_row() for s in result.steps]).to_csv(index=False),
                          "endpoint_generation_steps.csv", "text/csv", key=f"{key}_csv",
                          help="Every generated token with its probability and arrival time.")
    dl[1].download_button("Download run (JSON)", json.dumps(result.to_dict(), indent=2, default=str),
                          "endpoint_generation.json", "application/json", key=f"{key}_json",
                          help="Prompt, settings, completion, timings and every token's alternatives (no API key).")


def _generate_tab(endpoint: E.Endpoint, capabilities: Capabilities, prompt: str, key: str) -> None:
    settings, max_alternatives = _settings_controls(key, capabilities)
    cols = st.columns(3)
    max_new = cols[0].number_input("Max new tokens", 1, 4096, 20, 1, key=f"{key}_max_new",
                                   help="Sent as `max_tokens`; the server also stops at its end-of-text token.")
    seed = cols[1].number_input("Seed", 0, 2**31 - 1, 0, 1, key=f"{key}_seed",
                                help="Sent as `seed`: the same seed and settings give the same sample on vLLM.")
    top_n = cols[2].slider("Alternatives per token", 1, max_alternatives, min(5, max_alternatives), 1, key=f"{key}_top_n",
                           help=f"Sent as `logprobs`: how many top alternatives the server reports per token "
                                f"(this server allows up to {max_alternatives}).")
    settings = DecodingSettings(**{**settings.__dict__, "max_new_tokens": int(max_new), "seed": int(seed)})
    buttons = st.columns([1, 1, 4])
    run = buttons[0].button("Generate", type="primary", key=f"{key}_run", disabled=not prompt.strip(),
                            help="Stream a completion from the server.")
    buttons[1].button("Stop", key=f"{key}_stop", help="Stop the running generation and keep what arrived.")
    running = st.session_state.get(f"{key}_running")
    if running is not None:  # a rerun (Stop or any control) interrupted a stream: close it, keep its tokens
        running.stop()
        st.session_state[f"{key}_result"] = running.snapshot()
        st.session_state[f"{key}_running"] = None
    live = st.empty()
    if run:
        stream = stream_generate(endpoint, prompt, settings, int(top_n), capabilities)
        st.session_state[f"{key}_running"] = stream
        st.session_state[f"{key}_run_id"] = st.session_state.get(f"{key}_run_id", 0) + 1
        try:
            for _ in stream:
                live.markdown(colored_tokens_html(stream.steps), unsafe_allow_html=True)
        except E.EndpointError as exc:
            st.error(escape_markdown(exc), icon=":material/cloud_off:")
        finally:
            st.session_state[f"{key}_result"] = stream.snapshot()
            st.session_state[f"{key}_running"] = None
        live.empty()
    result = st.session_state.get(f"{key}_result")
    if result is not None:
        if result.stop_reason == "stopped":
            st.warning(f"Stopped after {result.new_tokens} tokens.", icon=":material/stop_circle:")
        _show_result(result, f"{key}_{st.session_state.get(f'{key}_run_id', 0)}")
    elif not run:
        st.caption("Press **Generate** to stream a completion from the server.")


PRESETS = [("greedy", 1.0, 50, 1.0), ("sampling", 0.7, 50, 1.0), ("sampling", 1.3, 0, 0.9)]


def _compare_tab(endpoint: E.Endpoint, capabilities: Capabilities, prompt: str, key: str) -> None:
    st.write("The same prompt under two or three settings on the server, side by side, with the same seed.")
    top = st.columns(3)
    count = top[0].slider("Settings to compare", 2, 3, 3, 1, key=f"{key}_count", help="How many settings to run.")
    max_new = top[1].number_input("Max new tokens", 1, 256, 20, 1, key=f"{key}_max_new",
                                  help="Upper limit on generated tokens for every setting.")
    seed = top[2].number_input("Seed", 0, 2**31 - 1, 0, 1, key=f"{key}_seed", help="One seed for all settings.")
    compared = []
    for i, column in enumerate(st.columns(count)):
        with column:
            st.markdown(f"**Setting {chr(65 + i)}**")
            settings, _ = _settings_controls(f"{key}_{i}", capabilities, compact=True, preset=PRESETS[i])
            compared.append((chr(65 + i), DecodingSettings(**{**settings.__dict__, "max_new_tokens": int(max_new),
                                                               "seed": int(seed)})))
    if st.button("Run comparison", type="primary", key=f"{key}_run", disabled=not prompt.strip(),
                 help="Generate once per setting on the server, one after another."):
        results, bar = {}, st.progress(0.0, text="Generating…")
        try:
            for done, (label, settings) in enumerate(compared):
                bar.progress(done / len(compared), text=f"Setting {label}: {settings.mode}…")
                results[label] = generate(endpoint, prompt, settings, 5, capabilities)
            st.session_state[f"{key}_results"] = results
        except E.EndpointError as exc:
            st.error(escape_markdown(exc), icon=":material/cloud_off:")
        finally:
            bar.empty()
    results = st.session_state.get(f"{key}_results")
    if results:
        for column, (label, res) in zip(st.columns(len(results)), results.items()):
            with column:
                st.markdown(f"**{label}: {res.settings.mode}**")
                st.markdown(colored_tokens_html(res.steps), unsafe_allow_html=True)
                st.caption(f"{res.new_tokens} tokens · {res.tokens_per_s:,.1f} tokens/s · "
                           f"mean model p {res.mean_probability:.2f}")
        st.plotly_chart(compare_figure({f"{k}: {v.settings.mode}": v for k, v in results.items()}), width="stretch",
                        key=f"{key}_chart")
        st.download_button("Download comparison (JSON)",
                           json.dumps({k: v.to_dict() for k, v in results.items()}, indent=2, default=str),
                           "endpoint_comparison.json", "application/json", key=f"{key}_json",
                           help="All compared runs with settings and steps (no API key).")


def render_endpoint_runtime(key: str = "gen_ep") -> None:
    """The Generate page on an endpoint: pick the server, write a prompt, then Generate or Compare settings."""
    endpoint = select_endpoint(key)
    if endpoint is None:
        return
    capabilities = probe_or_error(endpoint)
    if capabilities is None:
        st.button("Try again", key=f"{key}_retry", help="Ask the server again.")
        return
    _server_caption(capabilities)
    prompt = st.text_area("Prompt", value="The capital of France is", key=f"{key}_prompt", height=100,
                          help="Sent as is to the server's /v1/completions (no chat template is applied).")
    if not prompt.strip():
        st.warning("The prompt is empty: write something for the model to continue.", icon=":material/edit:")
    generate_tab, compare_tab = st.tabs([":material/edit_note: Generate", ":material/compare: Compare settings"])
    with generate_tab:
        _generate_tab(endpoint, capabilities, prompt, f"{key}_gen")
    with compare_tab:
        _compare_tab(endpoint, capabilities, prompt, f"{key}_cmp")
