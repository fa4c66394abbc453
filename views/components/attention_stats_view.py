"""*Head statistics* on the Attention page: one per-head number drawn as a layers × heads heatmap, the heads counted by
dominant pattern, and the table of every statistic. Thin: the statistics come from core.run.attention.head_statistics,
the heatmap from core.run.attention_charts.

One call: ``render_head_statistics(stats)`` returns the view's CSV export, ``(csv text, file name)``.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.run import attention as A
from core.run import attention_charts as C


def render_head_statistics(stats: pd.DataFrame) -> tuple[str, str]:
    """The statistics view of ``stats`` (one row per layer and head); returns (CSV text, file name) of the table."""
    columns = [c for c in A.STATISTIC_DESCRIPTIONS if not stats[c].isna().all()]
    statistic = st.selectbox("Statistic", columns, key="statistic",
                             format_func=lambda c: f"{c}: {A.STATISTIC_DESCRIPTIONS[c]}",
                             help="Which per-head number to draw as a layers × heads heatmap. The table below has "
                                  "all of them. Definitions follow Clark et al. 2019 (What Does BERT Look At?) and "
                                  "Xiao et al. 2023 (attention sinks).")
    st.plotly_chart(C.statistics_heatmap(stats, statistic), key="stats_chart")
    counts = stats["pattern"].value_counts()
    st.markdown("**Heads by dominant pattern** (over half of their attention): " +
                ", ".join(f"{name} {count}" for name, count in counts.items()) + f" of {len(stats)} heads.")
    st.dataframe(
        stats, hide_index=True, key="stats_table",
        column_config={
            "entropy_bits": st.column_config.NumberColumn("entropy (bits)", format="%.2f",
                                                          help=A.STATISTIC_DESCRIPTIONS["entropy_bits"]),
            "normalized_entropy": st.column_config.NumberColumn("normalised entropy", format="%.2f",
                                                                help=A.STATISTIC_DESCRIPTIONS["normalized_entropy"]),
            "sink_share": st.column_config.NumberColumn("first token", format="percent",
                                                        help=A.STATISTIC_DESCRIPTIONS["sink_share"]),
            "previous_token_share": st.column_config.NumberColumn(
                "previous token", format="percent", help=A.STATISTIC_DESCRIPTIONS["previous_token_share"]),
            "self_share": st.column_config.NumberColumn("itself", format="percent",
                                                        help=A.STATISTIC_DESCRIPTIONS["self_share"]),
            "mean_distance_tokens": st.column_config.NumberColumn(
                "mean distance (tokens)", format="%.1f", help=A.STATISTIC_DESCRIPTIONS["mean_distance_tokens"]),
            "max_weight": st.column_config.NumberColumn("largest weight", format="%.2f",
                                                        help=A.STATISTIC_DESCRIPTIONS["max_weight"]),
            "pattern": st.column_config.TextColumn("pattern", help="The pattern holding over half of the head's "
                                                                    "attention, if any."),
        })
    return (stats.to_csv(index=False, float_format="%.6g"), "attention-head-statistics.csv")
