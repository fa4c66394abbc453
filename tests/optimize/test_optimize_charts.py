"""core.optimize.charts without a model (issue 32): the perplexity chart's log axis fits the data with one tick
format, the KL chart names the dense model, a study of layer removal alone has no sparsity chart, and huge
perplexities read as powers of ten."""
import math

import pytest

from core.common.units import format_magnitude, power_of_ten
from core.optimize import charts, variants

DENSE = {"method": "dense", "variant": "dense (fp32)", "sparsity_pct": 0.03, "perplexity": 18.2, "kl_mean_nats": 0.0}
MAGNITUDE = [{"method": "magnitude", "variant": f"magnitude {p} %", "sparsity_pct": float(p), "perplexity": ppl,
              "kl_mean_nats": kl} for p, ppl, kl in ((30, 25.0, 0.2), (70, 48_643.0, 5.0))]
LAYERS = {"method": "remove-layers", "variant": "29 layers removed", "sparsity_pct": 0.03,
          "perplexity": 8.722954806059943e26, "kl_mean_nats": 9.4}


def test_the_perplexity_axis_fits_the_data_not_ten_to_the_35():
    fig = charts.sparsity_figure([DENSE, *MAGNITUDE])
    axis = fig.layout.yaxis
    assert axis.type == "log"
    low, high = axis.range
    assert math.log10(18.2) - 0.5 < low < math.log10(18.2) and math.log10(48_643) < high < math.log10(48_643) + 0.5
    # one format: plain numbers below 10⁵, every tick inside the range
    assert all("e" not in t and "10⁰" not in t and "k" not in t for t in axis.ticktext)
    assert list(axis.ticktext) == ["100", "1,000", "10,000"]
    assert all(low <= math.log10(v) <= high for v in axis.tickvals)


def test_a_huge_perplexity_gets_powers_of_ten_on_every_tick():
    fig = charts.sparsity_figure([DENSE, *MAGNITUDE, LAYERS])
    axis = fig.layout.yaxis
    low, high = axis.range
    assert high < 28.5 and low > -0.5  # 8.7 × 10²⁶ is the top, not 10³⁵
    assert len(axis.ticktext) >= 3 and all(t.startswith("10") and "," not in t for t in axis.ticktext)
    assert all(low <= math.log10(v) <= high for v in axis.tickvals)


def test_the_kl_chart_names_the_dense_model_and_starts_at_zero():
    fig = charts.sparsity_figure([DENSE, *MAGNITUDE], "kl_mean_nats")
    assert fig.layout.title.text == "Mean KL to the dense model (nats) against sparsity"
    assert fig.layout.yaxis.title.text == "mean KL to the dense model (nats)"
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] >= 5.0
    assert "KL to the dense model (nats)" in variants.LINEUP_COLUMNS.values()


def test_the_sparsity_axis_spans_the_measured_zeros():
    fig = charts.sparsity_figure([DENSE, *MAGNITUDE, LAYERS])
    low, high = fig.layout.xaxis.range
    assert -5 < low < 0 and 70 < high < 80


def test_layer_removal_alone_has_no_sparsity_to_chart():
    assert not charts.has_sparsity_spread([DENSE, LAYERS])
    assert not charts.has_sparsity_spread([DENSE])
    assert charts.has_sparsity_spread([DENSE, LAYERS, MAGNITUDE[0]])


@pytest.mark.parametrize("value, text", [(18.234, "18.23"), (48_642.71, "48,642.71"),
                                         (8.722954806059943e26, "8.72 × 10²⁶"), (9.999e26, "1.00 × 10²⁷"),
                                         (float("inf"), "∞")])
def test_format_magnitude_reads_like_a_formula(value, text):
    assert format_magnitude(value) == text
    assert power_of_ten(-3) == "10⁻³"


def test_the_dense_label_sits_on_its_line_on_the_log_axis():
    """add_hline's annotation took 18.2 as a log10 exponent (10^18.2), which is what stretched the axis to 10³⁵."""
    fig = charts.sparsity_figure([DENSE, *MAGNITUDE])
    (label,) = fig.layout.annotations
    assert label.text == "dense: 18.2" and label.y == pytest.approx(math.log10(18.2))
    assert charts.sparsity_figure([DENSE, *MAGNITUDE], "kl_mean_nats").layout.annotations[0].y == 0
