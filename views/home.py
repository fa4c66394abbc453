"""Home: what each page is for, with links."""
import streamlit as st

st.title(":material/science: LLM Lab")
st.write(
    "Explore real language models in the browser and plan the hardware to train and serve them. "
    "Everything shown is measured on a real model or computed from a published formula; "
    "each formula names its source."
)

cols = st.columns(2)
with cols[0]:
    st.subheader("Explore a model")
    st.page_link("views/generate.py", label="Generate", icon=":material/edit_note:")
    st.caption("Live text generation with every sampling control, and the probability behind every token.")
    st.page_link("views/attention.py", label="Attention", icon=":material/grid_on:")
    st.caption("Attention heatmaps per layer and head for decoder, encoder and encoder-decoder models.")
    st.page_link("views/layers.py", label="Layers", icon=":material/layers:")
    st.caption("The logit lens: what each layer's residual stream predicts, and where the answer appears.")
    st.page_link("views/quantization.py", label="Quantization", icon=":material/compress:")
    st.caption("One model at fp32 / fp16 / bf16 / int8 / 4-bit: measured memory, speed and quality.")
    st.page_link("views/finetune.py", label="Fine-tune", icon=":material/model_training:")
    st.caption("Train a LoRA adapter on the bundled model live, then compare its answers with the base model's.")
    st.page_link("views/optimize.py", label="Optimize", icon=":material/content_cut:")
    st.caption("Prune weights or layers, distil a pruned student, and line fp32, int8, NF4, pruned and distilled up.")
    st.page_link("views/evaluate.py", label="Evaluate", icon=":material/fact_check:")
    st.caption("Score prompt techniques and model variants on a bundled task (accuracy, ROUGE): which setup is best.")
with cols[1]:
    st.subheader("Plan hardware")
    st.page_link("views/memory_planner.py", label="Memory planner", icon=":material/memory:")
    st.caption("What a model needs to serve, fine-tune and pre-train, and on which GPUs (KV cache, ZeRO/FSDP).")
    st.page_link("views/compute_planner.py", label="Compute planner", icon=":material/speed:")
    st.caption("Training FLOPs, petaFLOP/s-days, GPU time and cost, Chinchilla-optimal sizing.")
    st.page_link("views/serving.py", label="Serving planner", icon=":material/dns:")
    st.caption("GPUs, latency and cost to serve a model to N users (KV budget, roofline), checked against a run here.")
    st.page_link("views/serving_load.py", label="Serving load test", icon=":material/stacked_line_chart:")
    st.caption("Fire concurrent requests at a vLLM / OpenAI-compatible endpoint: TTFT, TPOT, latency percentiles, "
               "throughput.")
