"""A finished (or still streaming) generation on the Generate page: speed metrics, the coloured tokens, the
distribution behind any step, the probability timeline and downloads. Thin: figures and rows come from
core.run.generation_charts, timings from core.run.generation.

``render_metric_row(container, result, steps)`` draws the five speed/progress metrics (also while streaming);
``render_generation_result(result, key_prefix)`` draws the whole result, its widget keys prefixed by ``key_prefix``.
"""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core.common.units import format_duration_s
from core.run.generation import STAGE_LABELS, GenerationResult, StepEvent, decode_tokens_per_s
from core.run.generation_charts import (
    color_legend_html,
    colored_tokens_html,
    probability_timeline_figure,
    step_distribution_figure,
    step_table_rows,
)
from views.components.queue_panel import ttft_metrics


def render_metric_row(container, result: GenerationResult | None, steps: list[StepEvent],
                      queue_wait_s: float = 0.0) -> None:
    """Speed and progress of a finished result, or (result None) of a generation still streaming its steps."""
    cols = container.columns(5)
    ttft = result.ttft_s if result is not None else (steps[0].time_s if steps else None)
    whole_run = result is not None and not result.streamed  # beam search: no per-token timing
    ttft_metrics(cols[0], cols[4], None if whole_run else ttft,
                 result.queue_wait_s if result is not None else queue_wait_s)
    rate = result.tokens_per_s if whole_run else decode_tokens_per_s(steps)
    cols[1].metric("Speed", f"{rate:,.1f} tokens/s" if rate else "—",
                   help="Beam search: generated tokens ÷ the whole run's time (prefill included), since its tokens "
                        "are not timed one by one." if whole_run
                   else "Tokens generated per second after the first one (decode speed); shown from the second token.")
    cols[2].metric("Generated", f"{len(steps)} tokens", help="New tokens so far (the prompt is not counted).")
    reason = {"eos": "end of text", "max_new_tokens": "token limit", "time_limit": "time limit", "stopped": "Stop"}
    cols[3].metric("Finished by", reason.get(result.stop_reason, "—") if result else "running…",
                   help="Why generation ended: the model's end-of-text token, the max-new-tokens limit, this server's "
                        "per-request time limit, or Stop.")
    if whole_run:
        container.caption(f"Beam search is not streamed: no time to first token, and the speed is "
                          f"{result.new_tokens} tokens over the whole {format_duration_s(result.total_s)} run.")


def render_generation_result(result: GenerationResult, key_prefix: str = "gen") -> None:
    for note in result.notes:
        st.info(note, icon=":material/info:")
    if not result.steps:
        st.warning("No tokens were generated.")
        return
    n = len(result.steps)
    step_index = 0
    if n > 1:
        step_index = st.slider(
            "Inspect step", 0, n - 1, value=0, key=f"{key_prefix}_step",
            help="Pick a generated token to see the distribution it was chosen from (it is outlined in the text).",
        )
    st.markdown(colored_tokens_html(result.steps, selected=step_index, prompt_text=None), unsafe_allow_html=True)
    st.markdown(color_legend_html(), unsafe_allow_html=True)
    render_metric_row(st, result, result.steps)
    step = result.steps[step_index]
    chart_col, table_col = st.columns([1, 1])
    chart_col.plotly_chart(step_distribution_figure(step), width="stretch", key=f"{key_prefix}_step_chart")
    rows = step_table_rows(step)
    if result.settings.mode == "greedy":
        table_col.caption(
            f"Step {step.index}: greedy decoding always takes the most likely token (here the model's "
            f"#{step.raw_rank} choice), so it was chosen with probability 1."
        )
    else:
        table_col.caption(
            f"Step {step.index}: {step.kept_tokens:,} candidate token(s) survived top-k / top-p; the chosen token was "
            f"the model's #{step.raw_rank} choice."
        )
    bar = lambda label, text: st.column_config.ProgressColumn(label, format="%.3f", min_value=0.0, max_value=1.0,  # noqa: E731
                                                              help=text, width="small")
    table_col.dataframe(
        pd.DataFrame(rows), hide_index=True, height=380,
        column_config={
            "token": st.column_config.TextColumn("token", width="small", help="▶ marks the chosen token."),
            "id": st.column_config.NumberColumn("id", width="small", help="Token id in the vocabulary."),
            "model p": bar("model p", STAGE_LABELS["raw"]),
            "adjusted p": bar("adjusted p", STAGE_LABELS["temperature"]),
            "sampled-from p": bar("sampled-from p", STAGE_LABELS["filtered"]),
        },
    )
    st.plotly_chart(probability_timeline_figure(result.steps), width="stretch", key=f"{key_prefix}_timeline")
    table = pd.DataFrame([s.to_row() for s in result.steps])
    dl = st.columns(2)
    dl[0].download_button("Download steps (CSV)", table.to_csv(index=False), "generation_steps.csv", "text/csv",
                          key=f"{key_prefix}_csv", help="Every generated token with its probabilities and timing.")
    dl[1].download_button("Download run (JSON)", json.dumps(result.to_dict(), indent=2), "generation.json",
                          "application/json", key=f"{key_prefix}_json",
                          help="Prompt, settings, completion, timings and every step's top alternatives.")
