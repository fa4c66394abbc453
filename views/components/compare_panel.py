"""*Compare settings* on the Generate page: the same prompt under two to four decoding settings, side by side with the
same seed, with a chart of every token's probability and a JSON download. Thin: runs go through
core.run.generation.run_generation, the chart comes from core.run.generation_charts.

One call: ``render_compare_panel(loaded, prompt, use_chat, ready)``; results stay in ``st.session_state["cmp_results"]``.
"""
from __future__ import annotations

import json

import streamlit as st

from core.run.generation import GenerationError, GenerationInputError, run_generation
from core.run.generation_charts import colored_tokens_html, compare_figure
from core.run.sampling import DECODING_MODES, DecodingSettings
from views.components.sampler_controls import MODE_HELP


PRESETS = [
    ("greedy", 1.0, 50, 1.0),
    ("sampling", 0.7, 50, 1.0),
    ("sampling", 1.3, 0, 0.9),
    ("beam search", 1.0, 50, 1.0),
]


def render_compare_panel(loaded, prompt: str, use_chat: bool, ready: bool) -> None:
    """The compare tab's body: settings A–D, the Run button (disabled unless ``ready``) and the results."""
    st.write("The same prompt under two to four settings, side by side, with the same seed.")
    top_row = st.columns(3)
    count = top_row[0].slider("Settings to compare", 2, 4, 3, 1, key="cmp_count",
                              help="How many decoding settings to run side by side.")
    cmp_max_new = top_row[1].number_input("Max new tokens", 1, 256, 20, 1, key="cmp_max_new",
                                          help="Upper limit on generated tokens for every setting.")
    cmp_seed = top_row[2].number_input("Seed", 0, 2**31 - 1, 0, 1, key="cmp_seed",
                                       help="One seed for all settings, so differences come from the settings alone.")
    columns = st.columns(count)
    compared = []
    for i, column in enumerate(columns):
        preset = PRESETS[i]
        with column:
            st.markdown(f"**Setting {chr(65 + i)}**")
            cmode = st.selectbox("Decoding", list(DECODING_MODES), index=DECODING_MODES.index(preset[0]),
                                 key=f"cmp_mode_{i}", help=MODE_HELP)
            ctemp = st.slider("Temperature", 0.0, 2.0, preset[1], 0.05, key=f"cmp_temperature_{i}",
                              disabled=cmode != "sampling", help="Below 1 sharpens, above 1 flattens; 0 = greedy.")
            ctopk = st.number_input("Top-k", 0, 1000, preset[2], 1, key=f"cmp_top_k_{i}", disabled=cmode != "sampling",
                                    help="Sample among the k most likely tokens (0 = no limit).")
            ctopp = st.slider("Top-p", 0.0, 1.0, preset[3], 0.01, key=f"cmp_top_p_{i}", disabled=cmode != "sampling",
                              help="Sample within the smallest top set holding probability p (1 = no limit).")
            compared.append((chr(65 + i), DecodingSettings.for_mode(
                cmode, temperature=float(ctemp), top_k=int(ctopk), top_p=float(ctopp), max_new_tokens=int(cmp_max_new),
                seed=int(cmp_seed))))
    if st.button("Run comparison", type="primary", key="cmp_run", disabled=not ready,
                 help="Generate once per setting (one after another) with the same prompt and seed."):
        results = {}
        bar = st.progress(0.0, text="Generating…")
        try:
            for done, (label, cmp_settings) in enumerate(compared):
                bar.progress(done / len(compared), text=f"Setting {label}: {cmp_settings.mode}…")
                results[label] = run_generation(loaded, prompt, cmp_settings, use_chat_template=use_chat)
            st.session_state["cmp_results"] = results
        except (GenerationInputError, GenerationError) as exc:
            st.error(str(exc), icon=":material/block:")
        finally:
            bar.empty()
    results = st.session_state.get("cmp_results")
    if results:
        out_cols = st.columns(len(results))
        for column, (label, res) in zip(out_cols, results.items()):
            with column:
                s = res.settings
                detail = {"greedy": "", "sampling": f" · T={s.temperature:g}, top-k={s.top_k}, top-p={s.top_p:g}",
                          "beam search": f" · {s.num_beams} beams"}[s.mode]
                st.markdown(f"**{label}: {s.mode}**{detail}")
                st.markdown(colored_tokens_html(res.steps), unsafe_allow_html=True)
                st.caption(f"{res.new_tokens} tokens · {res.tokens_per_s:,.1f} tokens/s · "
                           f"mean model p {res.mean_probability:.2f}")
                for note in res.notes:
                    st.caption(f":material/info: {note}")
        st.plotly_chart(compare_figure({f"{k}: {v.settings.mode}": v for k, v in results.items()}),
                        width="stretch", key="cmp_chart")
        st.download_button(
            "Download comparison (JSON)", json.dumps({k: v.to_dict() for k, v in results.items()}, indent=2),
            "comparison.json", "application/json", key="cmp_json", help="All compared runs with settings and steps.",
        )
