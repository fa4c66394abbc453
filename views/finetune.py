"""Fine-tune: LoRA or prompt tuning on the bundled SmolLM2, live (loss curve, tokens/s, Stop), then base vs base +
adapter."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.finetune import FinetuneError
from core.finetune.charts import loss_curve_figure
from core.finetune.data import load_dataset
from core.finetune.runner import FinetuneBusy, active_run, start_finetune
from core.finetune.settings import COMPARE_MAX_NEW_TOKENS, DEFAULT_LEARNING_RATES, FinetuneSettings, check_settings
from core.run.models import ModelLoadError
from core.common.units import GB
from core.common.user_text import escape_markdown
from core.finetune.pace import estimate_run
from views.components.whole_number import whole_number_input

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULTS = FinetuneSettings()
LONG_RUN_S = 600  # an estimate above 10 minutes is a warning, not a caption

st.title("Fine-tune")
st.caption("LoRA or prompt tuning on the bundled SmolLM2-135M-Instruct with PEFT: the base weights stay frozen; LoRA "
           "trains two small matrices per targeted layer, prompt tuning only a few soft-prompt embeddings put before "
           "every input. Both learn the bundled answer template. Watch the loss fall, then compare answers.")

data = load_dataset()
with st.expander(f"Data set: {data.name} ({len(data.examples)} examples)"):
    st.markdown(f"{data.source}  \nLicence: {data.licence}")
    # Sentences wrap in a table (a grid column would cut the longer answers at its edge).
    st.table(pd.DataFrame([{"prompt": p, "answer": a} for p, a in data.examples]), hide_index=True)

METHOD_LABELS = {"lora": "LoRA (Hu et al. 2021)", "prompt-tuning": "Prompt tuning (Lester et al. 2021)"}
method = st.radio("Method", list(METHOD_LABELS), format_func=METHOD_LABELS.get, horizontal=True, key="ft_method",
                  help="LoRA: low-rank updates of the chosen linear layers. Prompt tuning: the model is untouched; "
                       "only virtual tokens × hidden size (576) soft-prompt parameters train.")
lora = method == "lora"
c1, c2, c3, c4 = st.columns(4)
bad_entries: dict[str, str | None] = {}  # whole-number entries outside their range, by field
virtual_tokens, rank, alpha, dropout = DEFAULTS.num_virtual_tokens, DEFAULTS.rank, DEFAULTS.alpha, DEFAULTS.dropout
if not lora:
    virtual_tokens, bad_entries["virtual"] = whole_number_input(
        c1, "Virtual tokens", lo=1, hi=256, value=DEFAULTS.num_virtual_tokens, key="ft_virtual_tokens",
        help="Soft tokens prepended to every input; each is a trainable embedding of the model's hidden size (576 "
             "numbers for SmolLM2).")
else:
    rank, bad_entries["rank"] = whole_number_input(
        c1, "Rank r", lo=1, hi=4096, value=DEFAULTS.rank, key="ft_rank",
        help="LoRA rank: A is r × d_in and B is d_out × r for each targeted matrix. At most the smallest adapted "
             "layer width (576 for SmolLM2's attention).")
    alpha = c2.number_input("Alpha", min_value=0.0, max_value=4096.0, value=float(DEFAULTS.alpha), step=1.0,
                            key="ft_alpha", help="LoRA scaling: the update B·A is multiplied by alpha / r (a number, "
                                                 "no unit). alpha = 2·r is a common choice.")
    dropout = c3.number_input("Dropout", min_value=0.0, max_value=0.9, value=float(DEFAULTS.dropout), step=0.05,
                              key="ft_dropout", help="Probability (0–0.9) of zeroing each input to the adapters "
                                                     "while training; 0 trains fastest on this small data set.")
lr = c4.number_input("Learning rate", min_value=0.0, max_value=1.0, value=DEFAULT_LEARNING_RATES[method],
                     step=1e-4, format="%.4f", key="ft_lr" if lora else "ft_lr_prompt_tuning",
                     help="AdamW step size (per step, constant). LoRA tolerates larger rates than full fine-tuning: "
                          "1e-4 to 3e-3 is typical, 0.002 shows the template within the default steps. Soft "
                          "prompts need larger ones (0.03 here; Lester et al. used 0.3 with Adafactor).")
targets = list(DEFAULTS.target_modules)  # not used by prompt tuning
if lora:
    targets = st.multiselect("Target modules", PROJECTIONS, default=["q_proj", "k_proj", "v_proj", "o_proj"],
                             key="ft_targets", help="Which linear layers of every transformer block get a LoRA "
                                                    "adapter: attention (q/k/v/o) and/or the MLP (gate/up/down).")
d1, d2, d3, d4, d5 = st.columns(5)
steps, bad_entries["steps"] = whole_number_input(
    d1, "Steps", lo=1, hi=10_000, value=DEFAULTS.steps, step=5, key="ft_steps",
    help="Optimizer steps (each one a batch). The default 12 shows the answer template; each step takes seconds on "
         "a free CPU (see tokens/s while it runs).")
seq_len, bad_entries["seq"] = whole_number_input(
    d2, "Sequence length (tokens)", lo=16, hi=8192, value=DEFAULTS.seq_len, step=16, key="ft_seq",
    help="Longest training example in tokens; longer ones are cut. The bundled examples are 55–67 tokens in the "
         "chat template (the prompt alone about 36).")
batch, bad_entries["batch"] = whole_number_input(
    d3, "Batch (sequences)", lo=1, hi=512, value=DEFAULTS.batch_size, key="ft_batch",
    help="Examples per optimizer step. Memory and time per step grow with batch × sequence length.")
seed = d4.number_input("Seed", min_value=0, max_value=2**31 - 1, value=DEFAULTS.seed, step=1, key="ft_seed",
                       help="Seeds the adapter's initialisation and the example order; the comparison answers are "
                            "greedy, so they do not depend on it.")

answer_tokens = d5.number_input("Answer length (tokens)", min_value=1, max_value=512, value=COMPARE_MAX_NEW_TOKENS,
                                step=8, key="ft_answer_tokens",
                                help="Most new tokens of each comparison answer (greedy decoding) after training.")

settings = FinetuneSettings(rank=int(rank), alpha=float(alpha), dropout=float(dropout),
                            target_modules=tuple(targets), learning_rate=float(lr), steps=int(steps),
                            seq_len=int(seq_len), batch_size=int(batch), seed=int(seed),
                            compare_max_new_tokens=int(answer_tokens), method=method,
                            num_virtual_tokens=int(virtual_tokens))
problem = " ".join(p for p in bad_entries.values() if p) or None
try:
    if problem:  # an entry out of range: say so, and start nothing with a number that was not entered
        raise FinetuneError(problem)
    plan = check_settings(settings)
except (FinetuneError, ModelLoadError) as exc:
    problem = str(exc)
    st.error(problem, icon=":material/edit:")
else:
    if lora:
        st.caption(f"{plan['trainable_params']:,} trainable parameters ({plan['trainable_pct']:.2f} % of the "
                   f"model). Predicted peak {plan['total_bytes'] / GB:,.2f} GB for a 16-bit base (plan_finetune; "
                   f"this run keeps the base in fp32, ≤ {plan['required_bytes'] / GB:,.2f} GB) of "
                   f"{plan['free_bytes'] / GB:,.1f} GB free.")
    else:
        st.caption(f"{plan['trainable_params']:,} trainable parameters = {int(virtual_tokens)} virtual tokens × "
                   f"576 (hidden size), {plan['trainable_pct']:.4f} % of the model; the same count as PEFT's. "
                   f"Predicted peak {plan['total_bytes'] / GB:,.2f} GB for a 16-bit base at {int(seq_len)} + "
                   f"{int(virtual_tokens)} positions (plan_finetune; this run keeps the base in fp32, ≤ "
                   f"{plan['required_bytes'] / GB:,.2f} GB) of {plan['free_bytes'] / GB:,.1f} GB free.")

    estimate = estimate_run(settings, plan)
    if estimate["seconds"] is not None and estimate["seconds"] > LONG_RUN_S:
        st.warning(estimate["text"], icon=":material/schedule:")
    else:
        st.caption(estimate["text"])

run = st.session_state.get("ft_run")
other = active_run()
if other is not None and other is not run:
    st.info(f"Another visitor's fine-tune is running ({other.progress().describe()}). One runs at a time on this "
            "machine; start yours when it has finished.", icon=":material/hourglass_top:")

b1, b2, _ = st.columns([1, 1, 4])
START_HELP = {"lora": "Load a fresh copy of SmolLM2, add LoRA adapters and train them on the bundled data set.",
              "prompt-tuning": "Load a fresh copy of SmolLM2, put trainable soft-prompt embeddings before every input "
                               "and train only them on the bundled data set (the model stays untouched)."}
start = b1.button("Start fine-tune", type="primary", key="ft_start", disabled=problem is not None,
                  help=START_HELP[method])
stop = b2.button("Stop", key="ft_stop", help="Stop after the current step; the adapter trained so far is still "
                                            "compared and downloadable.")

if stop:
    if run is not None and not run.progress().finished:
        run.stop()
    else:
        st.caption("Nothing of yours is running.")
if start and problem is None:
    if run is not None and not run.progress().finished:
        st.warning("Your fine-tune is still running: press Stop first.", icon=":material/hourglass_top:")
    else:
        try:
            run = start_finetune(settings)
        except FinetuneBusy as exc:
            st.warning(str(exc), icon=":material/hourglass_top:")
        except (FinetuneError, ModelLoadError) as exc:
            st.error(str(exc), icon=":material/edit:")
        else:
            st.session_state["ft_run"] = run


def show_progress() -> None:
    current = st.session_state.get("ft_run")
    if current is None:
        return
    p = current.progress()
    st.progress(min(p.step / max(p.total_steps, 1), 1.0), text=p.status_line())
    m1, m2, m3, m4 = st.columns(4)
    result = current.result if p.finished else None
    if result is None:  # live numbers while it runs
        m1.metric("Step", f"{p.step} / {p.total_steps}", help="Optimizer steps done / planned (one batch each).")
        m2.metric("Loss (nats/token)", "–" if p.loss is None else f"{p.loss:.3f}",
                  help="Cross-entropy of the latest step's batch over its answer tokens, in nats per token "
                       "(lower is better).")
        m3.metric("Speed (tokens/s)", "–" if not p.tokens_per_s else f"{p.tokens_per_s:,.0f}",
                  help="Tokens per second in the latest optimizer step (forward + backward + update).")
        m4.metric("Elapsed (s)", f"{p.elapsed_s:,.0f}", help="Wall-clock seconds since training started.")
    else:  # the finished run's summary
        m1.metric("Loss, first step (nats/token)", "–" if result.first_loss is None else f"{result.first_loss:.3f}",
                  help="Cross-entropy of the first step's batch over its answer tokens, in nats per token, "
                       "before any update.")
        m2.metric("Loss, last step (nats/token)", "–" if result.last_loss is None else f"{result.last_loss:.3f}",
                  help="Cross-entropy of the last step's batch over its answer tokens, in nats per token "
                       "(lower is better).")
        m3.metric("Training time (s)", f"{result.train_s:,.1f}",
                  help="Wall-clock seconds spent in the training steps (model loading not counted).")
        m4.metric("Mean speed (tokens/s)", f"{result.tokens_per_s:,.0f}",
                  help="Tokens processed per second, averaged over all training steps.")
    rows = current.steps()
    if rows:
        st.plotly_chart(loss_curve_figure(rows, p.total_steps), key="ft_loss_live")
    if p.finished and st.session_state.get("ft_shown") is not current:
        st.session_state["ft_shown"] = current
        st.rerun()  # the whole page, to show the results and stop polling


def show_comparison(result, key_prefix: str) -> None:
    st.subheader("Same prompts, base vs base + adapter")
    st.caption(f"Greedy decoding, at most {result.settings.compare_max_new_tokens} new tokens, same seed; the "
               "prompts are not in the training set.")
    for n, c in enumerate(result.comparisons):
        st.markdown(f"**{c.prompt}**")
        # Plain text in bordered boxes: the answers are results to read, not greyed-out disabled inputs (issue 32)
        adapter = "LoRA adapter" if result.settings.method == "lora" else "soft prompt"
        for column, title, help_text, answer in zip(
                st.columns(2), ("Base model", f"Base + {adapter}"),
                ("SmolLM2 without the adapter.", f"The same model with the trained {adapter}."), (c.base, c.adapted)):
            with column.container(border=True):
                st.markdown(f"**{title}**", help=help_text)
                st.markdown(escape_markdown(answer).replace("\n", "  \n") if answer.strip()
                            else "_(an empty answer)_")
    name = (f"smollm2-lora-r{result.settings.rank}" if result.settings.method == "lora"
            else f"smollm2-prompt-tuning-{result.settings.num_virtual_tokens}")
    st.download_button("Download adapter (PEFT safetensors, zip)", result.adapter_zip(),
                       file_name=f"{name}.zip", mime="application/zip",
                       key="ft_download", help="adapter_model.safetensors + adapter_config.json from PEFT's "
                                               "save_pretrained; load with PeftModel.from_pretrained.")


if run is not None:
    running = not run.progress().finished
    with st.container():  # the fragment's own slot: without it the element right after it was not drawn
        st.fragment(show_progress, run_every=1.0 if running else None)()
    if run.progress().phase == "error":
        st.error(run.progress().message, icon=":material/error:")
    result = run.result if run.progress().finished else None
    if result is not None:
        if result.stopped:
            st.warning(f"Stopped after {len(result.steps)} of {result.settings.steps} steps.",
                       icon=":material/stop_circle:")
        if not result.steps:
            st.caption("Stopped before the first step: nothing was trained, so there is nothing to compare.")
        else:
            show_comparison(result, key_prefix=f"ft_{id(run)}")
elif not start:
    st.caption("Press **Start fine-tune** to train. With the defaults the answers take on the template after a "
               "couple of minutes of CPU.")
