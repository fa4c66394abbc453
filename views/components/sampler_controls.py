"""More sampling controls (min-p, typical, ε, η, no-repeat n-gram, temperature placement) and the per-processor
chart, shared by the Generate and *Shape the distribution* tabs. Thin: values go into core.run.sampling.DecodingSettings,
the chart comes from core.run.sampling_charts."""
from __future__ import annotations

import streamlit as st

from core.run.sampling import ignored_controls, pipeline_stages
from core.run.sampling_charts import pipeline_figure

MODE_HELP = (  # the Decoding picker's help, on the Generate and Compare settings tabs
    "Greedy always takes the most likely next token; random sampling draws the next token from the (reshaped) "
    "probability distribution; beam search keeps the `num_beams` most likely partial sequences and returns the best."
)

HELP = {
    "min_p": "Keep only tokens whose probability is at least min-p × the top token's probability (Nguyen et al. 2024). "
             "Scales with the model's confidence. 0 = off.",
    "typical_p": "Locally typical sampling (Meister et al. 2023): keep the tokens whose surprise is closest to the "
                 "distribution's entropy, until their mass reaches this value. 1 = off.",
    "epsilon_cutoff": "ε-sampling (Hewitt et al. 2022): drop every token with probability below ε. 0 = off; "
                      "typical values 3e-4 to 9e-4.",
    "eta_cutoff": "η-sampling (Hewitt et al. 2022): drop tokens below min(η, √η·exp(−entropy)), a cutoff that "
                  "loosens when the model is unsure. 0 = off; typical values 3e-4 to 2e-3.",
    "no_repeat_ngram_size": "Forbid any n-gram (n tokens in a row) from appearing twice, prompt included "
                            "(Paulus et al. 2018). Acts in every mode. 0 = off.",
    "temperature_last": "transformers' generate() applies temperature first, then the truncation samplers. On: "
                        "temperature after them (llama.cpp / text-generation-webui order), so min-p and friends "
                        "cut by the model's own probabilities.",
}
UNSUPPORTED_NOTE = (
    "Not offered: contrastive search, DoLa and group beam search moved out of transformers' core into hub-hosted "
    "generation recipes in v5, and the Hugging Face Hub is offline here."
)


def _help(key: str, reasons: dict[str, str]) -> str:
    return HELP[key] + (f" — Disabled: {reasons[key]}" if key in reasons else "")


def more_sampler_controls(mode: str, key_prefix: str, runtime: str = "transformers") -> dict:
    """Widgets in an expander; returns DecodingSettings keyword arguments. A control the mode or runtime ignores is
    disabled with the reason in its help and below."""
    reasons = ignored_controls(mode, runtime)
    with st.expander("More samplers: min-p, typical, ε, η, no-repeat n-gram, temperature placement", expanded=False):
        a, b, c = st.columns(3)
        values = {
            "min_p": a.slider("Min-p", 0.0, 1.0, 0.0, 0.01, key=f"{key_prefix}_min_p",
                              help=_help("min_p", reasons), disabled="min_p" in reasons),
            "typical_p": b.slider("Typical-p", 0.01, 1.0, 1.0, 0.01, key=f"{key_prefix}_typical_p",
                                  help=_help("typical_p", reasons), disabled="typical_p" in reasons),
            "no_repeat_ngram_size": c.number_input("No-repeat n-gram size", 0, 10, 0, 1, key=f"{key_prefix}_ngram",
                                                   help=_help("no_repeat_ngram_size", reasons),
                                                   disabled="no_repeat_ngram_size" in reasons),
        }
        d, e, f = st.columns(3)
        values["epsilon_cutoff"] = d.number_input(
            "ε-cutoff", 0.0, 0.5, 0.0, 1e-4, format="%.4f", key=f"{key_prefix}_epsilon",
            help=_help("epsilon_cutoff", reasons), disabled="epsilon_cutoff" in reasons)
        values["eta_cutoff"] = e.number_input(
            "η-cutoff", 0.0, 0.5, 0.0, 1e-4, format="%.4f", key=f"{key_prefix}_eta",
            help=_help("eta_cutoff", reasons), disabled="eta_cutoff" in reasons)
        values["temperature_last"] = f.toggle("Temperature last", False, key=f"{key_prefix}_temperature_last",
                                              help=_help("temperature_last", reasons),
                                              disabled="temperature_last" in reasons)
        if reasons:
            shown = sorted({reason for reason in reasons.values()})
            st.caption("Disabled here: " + " ".join(shown))
        st.caption(UNSUPPORTED_NOTE)
    for key in reasons:  # an ignored control must not change the run
        values.pop(key, None)
    return values


def render_pipeline(logits, settings, input_ids, decode, key: str, n: int = 12, title: str = "") -> None:
    """The distribution after each processor, in the order generate() applies them (small multiples)."""
    stages = pipeline_stages(logits, settings, input_ids)
    st.plotly_chart(pipeline_figure(stages, decode, n=n, title=title), width="stretch", key=key)
    st.caption("One panel per processor, left to right in the order transformers' generate() applies them; grey ✗ "
               "stubs are tokens that panel's processor (or an earlier one) removed. Panels appear only for "
               "controls that are on.")
