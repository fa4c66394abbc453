"""Page-side view of the model's first-come-first-served queue (core.common.scheduler): the live "Queued: position …" line
while a run waits for its turn, the per-request caps, and the time-to-first-token metrics that count the wait."""
from __future__ import annotations

import streamlit as st

from core.common.units import format_duration_s
from core.common.scheduler import describe_limits, describe_wait, request_limits

WAIT_POLL_S = 0.5  # how often a waiting session's line is refreshed


def render_limits_caption() -> None:
    """The per-request caps of this server, next to the Generate button."""
    st.caption(describe_limits(request_limits()))


def wait_for_turn(stream, placeholder) -> None:
    """Wait in the model's queue, showing the place in line and the wait live in ``placeholder``; clears it once the
    run is admitted. Stop, a changed control or a closed tab interrupts this script at the next refresh, and the
    stream's ``close()`` (in the caller's ``finally``) then takes the run out of the line."""
    for status in stream.wait_for_turn(poll_s=WAIT_POLL_S):
        placeholder.info(describe_wait(status), icon=":material/hourglass_top:")
    placeholder.empty()


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration_s(seconds)


def ttft_metrics(ttft_col, wait_col, model_ttft_s: float | None, queue_wait_s: float) -> None:
    """Time to first token as the user saw it (queue wait included), and the queue wait on its own."""
    seen = None if model_ttft_s is None else queue_wait_s + model_ttft_s
    ttft_col.metric(
        "Time to first token", _duration(seen),
        help=f"From pressing Generate to the first token, as you saw it: the wait for your turn "
             f"({_duration(queue_wait_s)}) plus the model's own time to first token ({_duration(model_ttft_s)}), "
             "which is mostly the prompt's forward pass (prefill).",
    )
    wait_col.metric("Queue wait", _duration(queue_wait_s),
                    help="Time spent waiting for a turn at the model while other sessions' runs went first.")
