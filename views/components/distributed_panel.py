""""Run it here" on the Multi-GPU tab: a real data-parallel training step (DDP, ZeRO-1, FSDP2 ZeRO-2-like and ZeRO-3)
or tensor / pipeline layout (TP, PP with GPipe or 1F1B, TP × PP) on N rank processes of this machine, each rank's measured peak beside the prediction and the ZeRO formula, the bytes
each rank sent beside the ZeRO paper's volumes, and the torchrun command for the same step on GPUs.

One call: ``render_distributed_panel(planner_architecture, key="dist")``; results stay in
``st.session_state[f"{key}_runs"]``.
"""
from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from core.plan.architectures import ArchitectureError, get_config
from core.distributed import charts, report
from core.distributed.launcher import MAX_WORLD_SIZE, DistributedRunError, run_strategies, torchrun_command
from core.distributed.predict import DistributedRefused, check_fits, estimated_run_seconds
from core.distributed.presets import PRESETS
from core.distributed.parallel import LAYOUTS
from core.distributed.strategies import STRATEGIES, StrategyError
from core.common.scheduler import QueueLeft
from core.common.units import format_duration_s
from core.common.user_text import escape_markdown
from core.plan.peak_memory.inputs import learned_position_limit
from views.components.columns import fitted_columns
from views.components.whole_number import whole_number_input

PLANNER = "planner"
STRATEGY_SHORT = report.LABELS  # one name per strategy or layout in the picker, the tables and the chart
MODES = {"data": "Data parallel (DDP / ZeRO)", "model": "Tensor / pipeline parallel (TP, PP, TP × PP)"}


class _SessionGone:
    """A stop flag for the launcher: set once this browser session has disconnected (a closed tab), so the ranks
    are ended within one poll instead of running on for nobody."""

    def __init__(self):
        from streamlit import runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        self._session_id = ctx.session_id if ctx else None
        self._runtime = runtime.get_instance() if ctx and runtime.exists() else None  # none under AppTest

    def is_set(self) -> bool:
        if self._runtime is None or self._session_id is None:
            return False
        return not self._runtime.is_active_session(self._session_id)


def _mb(column: str, fmt: str = "%.2f MB", help: str | None = None):
    return st.column_config.NumberColumn(column, format=fmt, help=help)


COLUMNS = {
    "measured peak (MB)": _mb("measured peak (MB)", help="Peak bytes of live tensors on this rank during one "
                              "steady-state step (the profiler's allocation log on CPU)."),
    "predicted peak (MB)": _mb("predicted peak (MB)", help="LLM Lab's prediction for PyTorch's implementation: "
                               "model states as sharded, plus what FSDP gathers or keeps in flight at the peak."),
    "error (%)": st.column_config.NumberColumn(format="%+.1f %%", help="(predicted − measured) / measured"),
    "ZeRO paper formula (MB)": _mb("ZeRO paper formula (MB)", help="Data parallel: the planner's Multi-GPU formula (ZeRO "
                                   "Figure 1, fp32 AdamW: 4 + 4 + 8 bytes per parameter) plus the activations. "
                                   "TP / PP: the training-layout planner's per-GPU bytes for the rank's stage."),
    "parameters held (MB)": _mb("parameters held (MB)", help="This rank's local parameter bytes between steps."),
    "optimizer state held (MB)": _mb("optimizer state held (MB)", help="This rank's AdamW moments."),
    "sent per step (MB)": _mb("sent per step (MB)", help="Every collective of one step, ZeRO §7 accounting (an "
                              "all-reduce counts twice: reduce-scatter + all-gather)."),
    "ZeRO volume (MB)": _mb("ZeRO volume (MB)", help="DDP 2Ψ, ZeRO-1 (PyTorch) 3Ψ, ZeRO-2 2Ψ, ZeRO-3 3Ψ. TP / PP: "
                            "the planner's formulas: 4 all-reduces of b·s·h per layer per micro-batch, 2(t−1)/t of "
                            "each sent (Megatron-LM, ring), plus a stage boundary's activations and gradients."),
    "volume error (%)": st.column_config.NumberColumn(format="%+.1f %%", help="(formula − measured) / measured"),
}


def _architecture_choices(planner_architecture) -> dict[str, object]:
    choices = {key: preset["architecture"] for key, preset in PRESETS.items()}
    if planner_architecture is not None and not isinstance(planner_architecture, (int, float)):
        choices[PLANNER] = planner_architecture
    return choices


def _label(key: str, planner_architecture) -> str:
    if key == PLANNER:
        name = planner_architecture if isinstance(planner_architecture, str) else "custom config"
        return f"The planner's model ({name}, random weights)"
    return PRESETS[key]["label"]


def _show_results(runs: list, key: str) -> None:
    table = report.runs_table(runs)
    st.dataframe(table, hide_index=True, key=f"{key}_table", column_config=fitted_columns(table, COLUMNS))
    st.plotly_chart(charts.measured_vs_predicted_figure(table), key=f"{key}_chart")
    worst = table["error (%)"].abs().max()
    worst_volume = table["volume error (%)"].abs().max()
    st.caption(f"Worst per-rank peak error: {worst:.1f} %; worst communication error: {worst_volume:.1f} %. "
               f"Method: {runs[-1].ranks[0]['memory_method']}. Resident bytes (weights, gradient buckets, optimizer "
               "state) are counted tensor by tensor; gloo's own worker threads' temporaries are not seen by the "
               "profiler.")
    c1, c2, c3 = st.columns(3)
    c1.download_button("Download CSV", report.runs_csv(runs), file_name="llm_lab_distributed.csv", mime="text/csv",
                       key=f"{key}_csv", on_click="ignore", help="The per-rank table (MB and %) as CSV.")
    c2.download_button("Download JSON", report.runs_json(runs), file_name="llm_lab_distributed.json",
                       mime="application/json", key=f"{key}_json", on_click="ignore",
                       help="Every rank's full result: losses, parts, every collective with its bytes.")
    if c3.button("Clear results", key=f"{key}_clear", help="Forget this session's distributed runs."):
        st.session_state[f"{key}_runs"] = []
        st.rerun()


def render_distributed_panel(planner_architecture=None, *, key: str = "dist") -> list:
    """Render "Run it here"; ``planner_architecture``: the memory planner's model (catalog id or config), offered
    beside the small presets. Returns this session's runs (core.distributed.launcher.DistributedRun)."""
    runs: list = st.session_state.setdefault(f"{key}_runs", [])
    st.subheader("Run it here: a real distributed training step")
    # A run that was still going when this script last ran was ended by Stop (or another widget): say so, once.
    active = st.session_state.pop(f"{key}_active", None)
    if active is not None:
        done = len(runs) - active["runs_before"]
        st.warning(f"Stopped after {done} of {active['total']} strategies "
                   f"({format_duration_s(time.perf_counter() - active['started'])}); the finished ones are kept "
                   "below.", icon=":material/stop_circle:")
    st.caption("Starts N rank processes on this machine with **torch.distributed** (gloo on CPU; the same code runs "
               "on GPUs with NCCL under torchrun), trains a model with random weights for a few steps with each "
               "strategy, and shows each rank's measured peak memory and bytes communicated next to the "
               "predictions. Same seed and data on every strategy, so their losses match.")
    choices = _architecture_choices(planner_architecture)
    c1, c2, c3 = st.columns([2, 1, 1])
    choice = c1.selectbox("Model", list(choices), format_func=lambda k: _label(k, planner_architecture),
                          key=f"{key}_model",
                          help="Small Llama shapes train in seconds per rank on a CPU; the planner's model is built "
                               "with random weights (memory and communication do not depend on weight values).")
    world, bad_world = whole_number_input(c2, "Ranks (world size)", lo=1, hi=MAX_WORLD_SIZE, value=2,
                                          key=f"{key}_world", help="Processes started here, one per simulated GPU; "
                                                                   "each uses one CPU thread.")
    steps, bad_steps = whole_number_input(c3, "Steps", lo=4, hi=100, value=4, key=f"{key}_steps",
                                          help="Two warm-up steps (the first creates the optimizer state), one "
                                               "measured for memory, the last counted for communication; more steps "
                                               "only lengthen the loss curve.")
    mode = st.radio("Parallelism", list(MODES), format_func=MODES.get, horizontal=True, key=f"{key}_mode",
                    help="Data parallel: every rank its own micro-batch. Tensor / pipeline parallel: the ranks share "
                         "one model (torch.distributed.tensor.parallel, torch.distributed.pipelining).")
    c4, c5, c6 = st.columns([2, 1, 1])
    if mode == "model":
        strategies = c4.multiselect("Layouts", list(LAYOUTS), default=["tp", "pp_1f1b"], key=f"{key}_layouts",
                                    format_func=STRATEGY_SHORT.get,
                                    help="TP splits each layer's attention heads and MLP over the ranks (Megatron "
                                         "column/row split); PP cuts the layers into one stage per rank (GPipe or "
                                         "1F1B schedule); TP × PP: 2 stages, each tensor-parallel over half the "
                                         "ranks. Heads must divide by TP, layers by PP.")
    else:
        strategies = c4.multiselect("Strategies", list(STRATEGIES), default=list(STRATEGIES),
                                    key=f"{key}_strategies", format_func=STRATEGY_SHORT.get,
                                    help="DDP replicates everything; ZeRO-1 (ZeroRedundancyOptimizer) shards the "
                                         "optimizer state; FSDP2 fully_shard shards parameters, gradients and "
                                         "optimizer state, keeping gathered parameters from forward to backward "
                                         "(reshard_after_forward=False, ZeRO-2-like) or gathering them again "
                                         "(ZeRO-3).")
    seq_len, bad_seq = whole_number_input(c5, "Sequence length (tokens)", lo=2, hi=8192, value=32, step=16,
                                          key=f"{key}_seq", help="Tokens per sequence of each rank's micro-batch.")
    batch, bad_batch = whole_number_input(c6, "Micro-batch (sequences per rank)", lo=1, hi=1024, value=1,
                                          key=f"{key}_batch",
                                          help="Sequences per rank per step (data parallel: each rank its own; "
                                               "tensor / pipeline parallel: per micro-batch, shared).")
    micro, bad_micro = 1, None
    if mode == "model":
        micro, bad_micro = whole_number_input(st, "Micro-batches per step (pipelines)", lo=1, hi=64, value=2,
                                              key=f"{key}_micro", help="The pipeline layouts split each step into "
                                              "this many micro-batches (at least one per stage); TP ignores it.")
    entry_problems = [p for p in (bad_world, bad_steps, bad_seq, bad_batch, bad_micro) if p]
    architecture = choices[choice]
    problem = None
    predictions = {}
    notes = []
    try:
        if entry_problems:  # out of range: say so, and run nothing with a number that was not entered
            raise ValueError(" ".join(entry_problems))
        cfg = get_config(architecture)
        learned = learned_position_limit(architecture)
        if learned is not None and int(seq_len) > learned:
            raise ValueError(f"this model has learned position embeddings for {learned:,} tokens; choose a sequence "
                             f"length of at most {learned:,}.")
        if int(seq_len) > cfg["max_position_embeddings"]:
            notes.append(f"{int(seq_len):,} tokens is past this model's {cfg['max_position_embeddings']:,} positions "
                         "(its rotary positions extend, so the step runs): memory and communication are those of a "
                         "longer-context model of this shape.")
        if not strategies:
            problem = "Choose at least one strategy."
        else:
            predictions = check_fits(architecture, strategies, int(world), int(seq_len), int(batch), int(steps),
                                     microbatches=int(micro))
    except DistributedRefused as exc:
        problem = str(exc)
    except (ArchitectureError, StrategyError, ValueError, KeyError) as exc:  # LayoutError is a ValueError
        problem = f"Cannot run this setting: {exc}"

    if predictions:
        n = next(iter(predictions.values()))["n_params"]
        rows = [{"strategy": STRATEGY_SHORT[s], "predicted peak per rank (MB)": p["predicted_peak_bytes"] / 1e6,
                 "ZeRO paper formula (MB)": p["zero_paper_bytes"] / 1e6, "peak at": p["phase"],
                 "sent per rank per step (MB)": report.predicted_volume_bytes(
                     architecture, s, int(world), int(seq_len), int(batch), int(micro), p) / 1e6}
                for s, p in predictions.items()]
        eta = estimated_run_seconds(n, int(world), int(seq_len), int(batch), int(steps), len(strategies))
        ranks = "1 rank" if int(world) == 1 else f"{int(world)} ranks"
        st.markdown(f"**Predicted before running** — {n / 1e6:,.2f} M parameters, {ranks}, {int(steps)} steps, "
                    f"{int(seq_len):,} tokens × {int(batch)} per rank, fp32 AdamW; about {format_duration_s(eta)} "
                    f"for {len(strategies)} {'strategy' if len(strategies) == 1 else 'strategies'} here")
        st.caption("The estimate: 6·N FLOPs per token (Kaplan et al. 2020) at a conservative 20 GFLOP/s per core, "
                   "plus about 6 s per strategy to start its processes; the run reports what each one took.")
        for note in notes:
            st.caption(note)
        predicted = pd.DataFrame(rows)
        st.dataframe(predicted, hide_index=True, key=f"{key}_predicted", column_config=fitted_columns(predicted, {
            "predicted peak per rank (MB)": _mb("predicted peak per rank (MB)"),
            "ZeRO paper formula (MB)": _mb("ZeRO paper formula (MB)"),
            "sent per rank per step (MB)": _mb("sent per rank per step (MB)")}))
    if problem:
        st.warning(escape_markdown(problem), icon=":material/block:")

    b1, b2, _ = st.columns([1, 1, 4])
    go = b1.button("Run here", type="primary", key=f"{key}_run", disabled=problem is not None,
                   help="Start the ranks now; progress is shown per rank.")
    b2.button("Stop", key=f"{key}_stop", help="End every rank process now (the finished strategies are kept).")
    if go:
        before = list(runs)
        st.session_state[f"{key}_active"] = {"total": len(strategies), "runs_before": len(runs),
                                             "started": time.perf_counter()}
        with st.status(f"Running {len(strategies)} strategies on {int(world)} ranks…", expanded=True) as status:
            bars = {}

            def on_progress(strategy, rank, step, total):
                if (strategy, rank) not in bars:
                    bars[(strategy, rank)] = status.progress(0.0)
                bars[(strategy, rank)].progress(step / total,
                                                text=f"{STRATEGY_SHORT[strategy]} · rank {rank}: step {step}/{total}")

            def on_run(run):
                runs.append(run)
                worst = max(abs(r["error (%)"]) for r in report.rank_rows(run))
                status.write(f"{STRATEGY_SHORT[run.spec.strategy]}: done in {run.duration_s:.1f} s, worst per-rank "
                             f"peak error {worst:.1f} %.")

            try:
                run_strategies(architecture, strategies, int(world), seq_len=int(seq_len), batch_size=int(batch),
                               steps=int(steps), microbatches=int(micro), stop=_SessionGone(), on_progress=on_progress, on_run=on_run)
                st.session_state.pop(f"{key}_active", None)
                status.update(label=f"Finished {len(strategies)} of {len(strategies)} strategies", state="complete")
            except DistributedRefused as exc:
                st.session_state.pop(f"{key}_active", None)
                status.update(label="Not run", state="error")
                st.warning(escape_markdown(exc))
            except (DistributedRunError, QueueLeft) as exc:
                # Stop ends this script run before here (Streamlit's rerun), so the notice above says "Stopped".
                st.session_state.pop(f"{key}_active", None)
                status.update(label=f"Failed after {len(runs) - len(before)} of {len(strategies)} strategies",
                              state="error")
                st.error(escape_markdown(exc))
    if runs:
        _show_results(runs, key)
        _torchrun_expander(runs[-1], key)
    else:
        st.info("No run yet: press **Run here** to train with each strategy on this machine.")
    return runs


def _torchrun_expander(run, key: str) -> None:
    """The last run's spec and the torchrun command for the same step (same layout) on a GPU cluster."""
    spec = run.spec
    with st.expander("The same step on real GPUs (torchrun)"):
        st.caption("Save the spec as spec.json in a checkout of LLM Lab on each node and run the command there "
                   "(NCCL on CUDA; rank and rendezvous come from torchrun; MASTER_ADDR: the first node's address). "
                   "Each rank writes results/rank<r>.json. The layout scales with the world size: TP over all "
                   "ranks, PP one stage per rank, TP × PP two stages of world / 2 tensor-parallel ranks (TP "
                   "inside a node).")
        c1, c2 = st.columns(2)
        nodes, _ = whole_number_input(c1, "Nodes", lo=1, hi=4096, value=1, key=f"{key}_nodes")
        per_node, _ = whole_number_input(c2, "GPUs per node", lo=1, hi=64, value=run.world_size, key=f"{key}_gpus")
        st.code(json.dumps(spec.to_dict(), indent=2), language="json")
        st.code(torchrun_command(spec, int(per_node), nnodes=int(nodes)), language="bash")
