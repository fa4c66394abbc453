"""Evaluation results as tables and downloads."""
from __future__ import annotations

import io
import json

import pandas as pd

from core.evaluate.runner import EvalRun, summary, verdict

EXAMPLE_COLUMNS = ("setup", "item", "input", "reference", "answer", "completion")


def summary_frame(run: EvalRun) -> pd.DataFrame:
    return pd.DataFrame(summary(run))


def examples_frame(run: EvalRun) -> pd.DataFrame:
    """Per-item outputs, every setup's answer in its own column beside the reference (side by side)."""
    if not run.rows:
        return pd.DataFrame()
    frame = pd.DataFrame(run.rows)
    wide = frame.pivot_table(index=["item", "input", "reference"], columns="setup", values="answer",
                             aggfunc="first", sort=False).reset_index()
    wide.columns.name = None
    return wide


def run_csv(run: EvalRun) -> str:
    buffer = io.StringIO()
    pd.DataFrame(run.rows).to_csv(buffer, index=False)
    return buffer.getvalue()


def run_json(run: EvalRun) -> str:
    return json.dumps({"task": run.task, "stopped": run.stopped, "seconds": run.seconds, "verdict": verdict(run),
                       "summary": summary(run), "rows": run.rows}, indent=2, default=str)
