"""Result tables and downloads: one row per measurement (units in column names), CSV and JSON, component tables."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from core.common.units import GB

def result_row(result: Mapping) -> dict:
    """One table row (units in the column names) for a measurement result."""
    gb = lambda key: None if result.get(key) is None else round(result[key] / GB, 3)  # noqa: E731
    pct = lambda key: None if result.get(key) is None else round(result[key], 1)  # noqa: E731
    row = {
        "architecture": result["architecture"],
        "mode": result["mode"],
        "setting": result["setting"],
        "device": result["device"],
        "predicted peak (GB)": gb("predicted_peak_bytes"),
        "measured peak (GB)": gb("measured_peak_bytes"),
        "error (%)": pct("error_pct"),
        "textbook formula (GB)": gb("textbook_peak_bytes"),
        "textbook error (%)": pct("textbook_error_pct"),
        "24 B/param rule (GB)": gb("rule_of_thumb_bytes"),
        "24 B/param error (%)": pct("rule_of_thumb_error_pct"),
        "parameters": result.get("n_params"),
        "method": result.get("measurement_method", result["method"]),
        "seconds": round(result.get("seconds", 0.0), 1),
    }
    return row


def results_table(results: Iterable[Mapping]) -> list[dict]:
    """Rows for a table / CSV of many results (newest last)."""
    return [result_row(r) for r in results]


def results_csv(results: Iterable[Mapping]) -> str:
    """The results table as CSV text."""
    import csv
    import io

    rows = results_table(results)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def results_json(results: Iterable[Mapping]) -> str:
    """All result fields (bytes, components, phases) as JSON text."""
    import json

    return json.dumps(list(results), indent=2, default=float)


def ledger_table(prediction: Mapping) -> list[dict]:
    """What one layer keeps for backward, per token (bytes), from a ``predict_training_step`` result's ledger."""
    return [{"tensor kept for backward": name, "bytes per token": round(value, 1)}
            for name, value in prediction.get("ledger", [])]


def components_table(result: Mapping) -> list[dict]:
    """The measured and the predicted peak of one result split into their components (GB), one row each."""
    names = list(dict.fromkeys(list(result["measured_components"]) + list(result["predicted_components"])))
    return [{"component": name,
             "measured (GB)": round(result["measured_components"].get(name, 0.0) / GB, 4),
             "predicted (GB)": round(result["predicted_components"].get(name, 0.0) / GB, 4)} for name in names]
