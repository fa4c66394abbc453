"""Per-token tools under a finished generation: every processor's effect at the inspected step, branching from any
token (a small tree, compared side by side), and a standalone HTML export of the per-token view.

Thin: the numbers come from core.run.generation.continue_from, core.run.branching and core.run.sampling; figures from
core.run.generation_charts / core.run.sampling_charts; the HTML page from core.io.html_export.
"""
from __future__ import annotations

import html
import json

import pandas as pd
import streamlit as st

from core.run.branching import MAX_BRANCHES, BranchError, BranchTree, step_logits
from core.run.generation import GenerationError, GenerationInputError, GenerationResult, continue_from, prepare_prompt
from core.run.generation_charts import (
    color_legend_html,
    colored_tokens_html,
    compare_figure,
    display_token,
    probability_timeline_figure,
    step_distribution_figure,
)
from core.io.html_export import standalone_html
from core.common.user_text import escape_markdown
from views.components.sampler_controls import render_pipeline


def _decode(loaded):
    return lambda token_id: loaded.tokenizer.decode([int(token_id)])


def render_token_tools(loaded, prompt: str, use_chat: bool, result: GenerationResult, key_prefix: str) -> None:
    """Everything below the per-token view of `result` (the inspected step is read from `{key_prefix}_step`)."""
    if not result.steps:
        return
    step = min(int(st.session_state.get(f"{key_prefix}_step", 0) or 0), len(result.steps) - 1)
    stale = [key for key in st.session_state
             if isinstance(key, str) and ("_tree" in key or "_pipeline_" in key) and not key.startswith(f"{key_prefix}_")
             and not key.endswith("_pipeline_on")]
    for key in stale:  # trees and logits of earlier runs: keep one run's worth per session
        del st.session_state[key]
    _pipeline_at_step(loaded, result, step, key_prefix)
    _branches(loaded, prompt, use_chat, result, step, key_prefix)
    _export(result, step, key_prefix)


def _pipeline_at_step(loaded, result: GenerationResult, step: int, key_prefix: str) -> None:
    with st.expander(f"Each processor at step {step}: which control removed which token", expanded=False):
        if not st.toggle("Show the distribution after every processor", False, key=f"{key_prefix}_pipeline_on",
                         help="Runs the model once on the prompt and the tokens before this step, then applies the "
                              "run's processors one by one, in the order transformers' generate() applies them."):
            return
        cache_key = f"{key_prefix}_pipeline_{step}"
        if cache_key not in st.session_state:
            try:
                with st.spinner("One forward pass over the prompt and the tokens before this step…"):
                    st.session_state[cache_key] = step_logits(loaded, result, step)
            except (BranchError, GenerationInputError) as error:
                st.error(escape_markdown(error))
                return
        logits, context = st.session_state[cache_key]
        render_pipeline(logits, result.settings, context, _decode(loaded), key=f"{key_prefix}_pipeline_chart",
                        title=f"Step {step}: the distribution after each processor ({result.settings.mode})")


def _branches(loaded, prompt: str, use_chat: bool, result: GenerationResult, step: int, key_prefix: str) -> None:
    tree_key = f"{key_prefix}_tree"
    tree: BranchTree = st.session_state.setdefault(tree_key, BranchTree.start(result))
    with st.expander(f"Branch from any token ({len(tree.branches)} of at most {MAX_BRANCHES} branches)",
                     expanded=len(tree.branches) > 1):
        if result.settings.mode == "beam search":
            st.info("Beam search picks its tokens only once the search ends, so it cannot continue from a chosen "
                    "token. Switch to greedy or sampling to branch.")
            return
        st.caption("Pick another token at some step and continue from there with the same settings and seed. Each "
                   "branch keeps the tokens of its parent before that step. Probability = the model's probability of "
                   "the whole sequence (product of each token's raw probability).")
        cols = st.columns([1, 1, 2, 1])
        ids = [b.branch_id for b in tree.branches]
        parent_id = cols[0].selectbox("From branch", ids, key=f"{key_prefix}_branch_parent",
                                      format_func=lambda i: "root (original)" if i == 0 else f"branch {i}",
                                      help="The branch whose tokens the new branch starts from.")
        parent = tree.get(parent_id)
        n = len(parent.result.steps)
        at = cols[1].number_input("At step", 0, n - 1, min(step, n - 1), 1, key=f"{key_prefix}_branch_step",
                                  help="The step where the new branch takes another token (the root's default: the "
                                       "inspected step).")
        here = parent.result.steps[int(at)]
        options = [a for a in here.alternatives.get("raw", []) if a.token_id != here.token_id]
        if not options:
            st.caption("The model offered no alternative at this step.")
            return
        pick = cols[2].selectbox(
            "Take instead", options, key=f"{key_prefix}_branch_pick_{parent_id}_{int(at)}",
            format_func=lambda a: f"{display_token(a.token)!r} · model p = {a.probability:.3f}",
            help=f"The model's most likely tokens at this step (it chose {display_token(here.token)!r}, "
                 f"p = {here.probability:.3f}).")
        clicked = cols[3].button("Continue from here", key=f"{key_prefix}_branch_go", disabled=tree.full,
                            help=f"Generate the rest with the same settings and seed (at most {MAX_BRANCHES} branches).")
        if tree.full:
            st.caption(f"The tree is full ({MAX_BRANCHES} branches): remove one to branch again.")
        if clicked:
            _fork(loaded, prompt, use_chat, result, tree, parent_id, int(at), pick.token_id)
        if len(tree.branches) > 1:
            _compare(tree, key_prefix)


def _fork(loaded, prompt, use_chat, result, tree, parent_id, at, token_id) -> None:
    try:
        current = prepare_prompt(loaded, prompt, 1, use_chat)
        if current.input_ids.tolist() != result.prompt.input_ids.tolist():
            st.warning("The prompt changed since this generation; generate again before branching, so all branches "
                       "share one prompt.")
            return
        prefix = tree.fork_prefix(parent_id, at, token_id)
        with st.spinner("Continuing from the picked token…", show_time=True):
            branch = continue_from(loaded, prompt, prefix, result.settings, use_chat_template=use_chat)
        tree.add(parent_id, at, branch)
    except (BranchError, GenerationInputError, GenerationError) as error:
        st.error(escape_markdown(error))


def _compare(tree: BranchTree, key_prefix: str) -> None:
    table = pd.DataFrame(tree.rows())
    st.dataframe(table, hide_index=True, column_config={
        "branch": st.column_config.NumberColumn("branch", help="0 = the original generation."),
        "parent": st.column_config.NumberColumn("parent", help="The branch it forked from."),
        "fork_step": st.column_config.NumberColumn("fork step", help="Step where it took another token."),
        "picked_token": st.column_config.TextColumn("picked", help="The token it took at the fork."),
        "tokens": st.column_config.NumberColumn("tokens", help="Generated tokens, given prefix included."),
        "log_probability": st.column_config.NumberColumn("log p (nats)", format="%.2f",
                                                         help="Σ ln p of every token under the model."),
        "probability": st.column_config.NumberColumn("p (sequence)", format="%.2e",
                                                     help="The model's probability of the whole generated sequence."),
        "mean_token_probability": st.column_config.NumberColumn("mean token p", format="%.3f"),
        "completion": st.column_config.TextColumn("completion", width="large"),
    })
    chosen = st.multiselect("Compare side by side", [b.branch_id for b in tree.branches],
                            default=[b.branch_id for b in tree.branches][-2:], max_selections=3,
                            key=f"{key_prefix}_branch_compare",
                            help="Up to three branches next to each other, coloured by each token's probability.")
    if chosen:
        columns = st.columns(len(chosen))
        for column, branch_id in zip(columns, chosen):
            branch = tree.get(branch_id)
            title = "root" if branch_id == 0 else f"branch {branch_id} (from {branch.parent_id} at step {branch.fork_step})"
            column.markdown(f"**{title}** · p = {branch.probability:.2e}")
            column.markdown(colored_tokens_html(branch.result.steps, selected=branch.fork_step), unsafe_allow_html=True)
        st.plotly_chart(compare_figure({("root" if i == 0 else f"branch {i}"): tree.get(i).result for i in chosen}),
                        width="stretch", key=f"{key_prefix}_branch_chart")
    remove = st.selectbox("Remove a branch", [None] + [b.branch_id for b in tree.branches[1:]],
                          key=f"{key_prefix}_branch_remove", format_func=lambda i: "—" if i is None else f"branch {i}",
                          help="Removes the branch and every branch forked from it.")
    if remove is not None and st.button("Remove", key=f"{key_prefix}_branch_remove_go"):
        tree.remove(int(remove))
        st.rerun()
    st.download_button("Branches (JSON)", json.dumps([b.to_row() | {"run": b.result.to_dict()} for b in tree.branches]),
                       "branches.json", "application/json", key=f"{key_prefix}_branch_json",
                       help="Every branch with its tokens, probabilities and completion.")


def _export(result: GenerationResult, step: int, key_prefix: str) -> None:
    body = (colored_tokens_html(result.steps, selected=step) + color_legend_html()
            + f"<p>Settings: {html.escape(json.dumps(result.settings.to_dict()))}</p>")
    page = standalone_html([step_distribution_figure(result.steps[step]), probability_timeline_figure(result.steps)],
                           "LLM Lab: per-token view", body_html=body)
    st.download_button("Per-token view as standalone HTML", page, "per-token-view.html", "text/html",
                       key=f"{key_prefix}_html",
                       help="The coloured completion, the inspected step's distribution and the probability timeline "
                            "in one HTML file with plotly.js embedded: opens offline, for slides.")
