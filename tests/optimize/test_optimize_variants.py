"""core.optimize.variants on the bundled SmolLM2: one instrument for every variant. Removed layers shrink the
measured weights and parameters, zeros don't; quality falls with sparsity; bad choices are refused."""
import pytest

from core.optimize import charts, variants


@pytest.fixture(scope="module")
def base():
    from core.run.models import load_model

    return load_model(None, dtype="fp32", device="cpu")


@pytest.mark.long
def test_pruning_study_measures_dense_then_each_variant(base):
    seen = []
    rows = variants.pruning_study(base, ["magnitude", "remove-layers"], [0.2, 0.6], 3, max_new_tokens=8,
                                  on_row=lambda row, done, total: seen.append((done, total)))
    assert [r["method"] for r in rows] == ["dense", "magnitude", "magnitude", "remove-layers"]
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    dense, light, heavy, shallow = rows
    assert dense["kl_mean_nats"] == 0 and dense["top1_agreement"] == 100
    assert light["sparsity_pct"] == pytest.approx(20, abs=0.1) and heavy["sparsity_pct"] == pytest.approx(60, abs=0.1)
    assert dense["perplexity"] < light["perplexity"] < heavy["perplexity"]
    assert light["weight_bytes"] == dense["weight_bytes"]  # zeros are stored like any number
    assert shallow["layers"] == 27 and shallow["weight_bytes"] < dense["weight_bytes"]
    assert shallow["parameters"] < dense["parameters"] and all(r["answer"] for r in rows)
    table = variants.lineup_table(rows)
    assert list(table["Layers"]) == [30, 30, 30, 27]
    assert len(charts.sparsity_figure(rows).data) == 2  # magnitude's line and the removed layers' point
    assert "magnitude 20 %" in variants.rows_csv(rows) and '"rows"' in variants.rows_json(rows)


@pytest.mark.long
def test_head_removal_in_the_study_shrinks_weights_without_zeros(base):
    dense, heads = variants.pruning_study(base, ["remove-heads"], [], max_new_tokens=8)
    assert heads["method"] == "remove-heads" and heads["variant"] == "6 heads per layer"
    assert heads["layers"] == 30 and heads["sparsity_pct"] < 0.1  # no zeros added (0.03 % are natural)
    assert heads["weight_bytes"] < dense["weight_bytes"] and heads["parameters"] < dense["parameters"]
    # A third of the attention gone without retraining: the quality falls (SmolLM2 then often ends its answer at
    # once, so the answer may be empty), but the model still runs and generates.
    assert dense["perplexity"] < heads["perplexity"] and heads["generated_tokens"] >= 1
    assert 0 < heads["kl_mean_nats"] and heads["top1_agreement"] < 100


def test_bad_choices_are_refused(base):
    for kwargs, match in [({"methods": []}, "Choose pruning methods"), ({"methods": ["snip"]}, "Choose pruning"),
                          ({"sparsities": [0.99]}, "between 5 % and 95 %"), ({"sparsities": ["x"]}, "numbers"),
                          ({"methods": ["remove-layers"], "layers": 30}, "between 1 and 29")]:
        with pytest.raises(variants.VariantError, match=match):
            variants.pruning_study(base, **kwargs)
    with pytest.raises(variants.VariantError, match="Choose at least one"):
        variants.lineup(base, [])
