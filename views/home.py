"""Home: where to start for each of the three uses (explore a model, give a demo, plan hardware)."""
import streamlit as st

from core.run import models
from core.run.models import ModelLoadError

st.title(":material/science: LLM Lab")
st.write(
    "Explore real language models in the browser and plan the hardware to train and serve them. "
    "Everything shown is measured on a real model or computed from a published formula; "
    "each formula names its source. The sidebar lists every page; here are three ways in."
)

try:
    converted = models.bundled_decoder_is_converted()
except ModelLoadError:
    converted = None
if converted is False:
    # Measured 2026-12-01: ~30 s on an idle 2-core x86-64 machine, ~100 s with the cores busy.
    st.info("The first page that runs the bundled SmolLM2 model on this machine prepares it once (usually 30 s to "
            "2 min, with a progress bar); every later load, in any session, takes a few seconds. The planners need "
            "no model and open at once.", icon=":material/hourglass_top:")

START = [
    ("Explore a model", ":material/explore:",
     "Watch a real model think: generate, then see where it looks and when it knows the answer.",
     [("views/generate.py", "1. Generate", ":material/edit_note:",
       "Type a prompt, try greedy vs sampling; click any token for the probabilities behind it."),
      ("views/attention.py", "2. Attention", ":material/grid_on:",
       "Heatmaps per layer and head for the same prompt."),
      ("views/layers.py", "3. Layers", ":material/layers:",
       "The logit lens: the layer where the answer appears.")]),
    ("Give a demo", ":material/co_present:",
     "Ten minutes in front of a team, each step a real run on this machine.",
     [("views/generate.py", "1. Few-shot prompting", ":material/edit_note:",
       "Build a zero-, one- and few-shot prompt from an example set and compare the answers."),
      ("views/quantization.py", "2. Quantization", ":material/compress:",
       "fp32 against int8 and 4-bit: measured memory, speed and answers side by side."),
      ("views/finetune.py", "3. Fine-tune live", ":material/model_training:",
       "A LoRA adapter trained live on this machine, then the answers before and after.")]),
    ("Plan hardware", ":material/memory:",
     "For a capacity meeting: how many GPUs, how long, how much, from the papers' formulas.",
     [("views/memory_planner.py", "1. Memory planner", ":material/memory:",
       "Pick a model: memory to serve, fine-tune and pre-train, and which GPUs it fits."),
      ("views/compute_planner.py", "2. Compute planner", ":material/speed:",
       "Training FLOPs (6·N·D), GPU-days and cost, Chinchilla-optimal sizing."),
      ("views/serving.py", "3. Serving planner", ":material/dns:",
       "GPUs, latency and cost for N users, checked against a run here.")]),
]

cols = st.columns(len(START))
for col, (use, icon, lead, steps) in zip(cols, START):
    with col, st.container(border=True):
        st.subheader(f"{icon} {use}")
        st.caption(lead)
        for page, label, page_icon, what in steps:
            st.page_link(page, label=label, icon=page_icon)
            st.caption(what)

with st.expander("Every page in one line each"):
    for page, label, icon, what in [
        ("views/generate.py", "Generate", ":material/edit_note:",
         "Live text generation with every sampling control, and the probability behind every token."),
        ("views/attention.py", "Attention", ":material/grid_on:",
         "Attention heatmaps per layer and head for decoder, encoder and encoder-decoder models."),
        ("views/layers.py", "Layers", ":material/layers:",
         "The logit lens: what each layer's residual stream predicts, and where the answer appears."),
        ("views/quantization.py", "Quantization", ":material/compress:",
         "One model at fp32 / fp16 / bf16 / int8 / 4-bit: measured memory, speed and quality."),
        ("views/finetune.py", "Fine-tune", ":material/model_training:",
         "Train a LoRA adapter on the bundled model live, then compare its answers with the base model's."),
        ("views/optimize.py", "Optimize", ":material/content_cut:",
         "Prune weights or layers, distil a pruned student, and line fp32, int8, NF4, pruned and distilled up."),
        ("views/evaluate.py", "Evaluate", ":material/fact_check:",
         "Score prompt techniques and model variants on a bundled task (accuracy, ROUGE): which setup is best."),
        ("views/memory_planner.py", "Memory planner", ":material/memory:",
         "What a model needs to serve, fine-tune and pre-train, and on which GPUs (KV cache, ZeRO/FSDP)."),
        ("views/compute_planner.py", "Compute planner", ":material/speed:",
         "Training FLOPs, petaFLOP/s-days, GPU time and cost, Chinchilla-optimal sizing."),
        ("views/serving.py", "Serving planner", ":material/dns:",
         "GPUs, latency and cost to serve a model to N users (KV budget, roofline), checked against a run here."),
        ("views/serving_load.py", "Serving load test", ":material/stacked_line_chart:",
         "Fire concurrent requests at a vLLM / OpenAI-compatible endpoint: TTFT, TPOT, latency percentiles, "
         "throughput."),
    ]:
        st.page_link(page, label=label, icon=icon, help=what)
        st.caption(what)
