"""The memory planner page under Streamlit's AppTest: renders, reacts to its controls, survives bad input without
losing the other inputs, restores its inputs from the URL (incl. the compute planner's ?params= link)."""
import json

import pytest

from core.plan import architectures, memory
from core.plan import memory_plan
from tests.apptest import run_page_with_query

PAGE = "views/memory_planner.py"


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def plan_warnings(at) -> list[str]:
    """Warnings about the plan's inputs. The Measure tab also warns when this machine lacks the free memory to
    measure the model: that depends on what else runs here, not on the page, so it is left out."""
    return [w.value for w in at.warning if "free here" not in w.value]


def run_page(query: dict | None = None):
    return run_page_with_query(PAGE, query)


@pytest.fixture(scope="module")
def default_page():
    return run_page()


def test_default_plan_renders(default_page):
    at = default_page
    assert at.title[0].value == "Memory planner"
    shown = metrics(at)
    assert shown["Parameters"] == "8.03B"  # Meta-Llama-3-8B, 8,030,261,248 parameters
    assert shown["fp16/bf16 weights"] == "16.06 GB"
    assert shown["KV cache"] == "0.54 GB"  # 2·32·8·128·4096·2 bytes
    serve = memory.inference_breakdown("meta-llama/Meta-Llama-3-8B", "bf16", 4096, 1, 2)
    assert shown["Serve on 1 GPU"] == memory_plan.format_gb(sum(serve.values())) == "21.11 GB"
    assert shown["A100 80GB SXM GPUs to serve"] == "1"
    assert not at.error and not plan_warnings(at)
    assert len(at.get("plotly_chart")) == 7  # + the fine-tuning tab's LoRA vs full chart
    labels = [d.proto.label for d in at.get("download_button")]
    assert any("CSV" in label for label in labels) and any("JSON" in label for label in labels)
    markdown = " ".join(m.value for m in at.markdown)
    assert "24 bytes/param" in markdown and "16 bytes/param" in markdown


def test_every_input_is_written_to_the_url(default_page):
    qp = default_page.query_params
    for key in ("src", "model", "fmt", "kv", "ctx", "batch", "ws", "ovh", "tseq", "mb", "recompute", "k", "gpus",
                "stage", "gpu", "gpu_gb", "headroom"):
        assert key in qp, key
    assert qp["model"] == "meta-llama/Meta-Llama-3-8B" and qp["gpu"] == "A100 80GB SXM" and qp["ctx"] == "4096"
    assert "params" not in qp and "cfg" not in qp  # only the inputs of the chosen model source


def test_every_control_has_help_text(default_page):
    at = default_page
    widgets = (list(at.text_input) + list(at.number_input) + list(at.selectbox) + list(at.radio)
               + list(at.text_area))
    assert len(widgets) >= 15
    for w in widgets:
        assert w.help, w.label


def test_changing_the_model_changes_the_numbers():
    at = run_page()
    at.selectbox(key="mem_model").set_value("gpt2").run()
    assert not at.exception
    assert metrics(at)["Parameters"] == "124M"
    assert at.query_params["model"] == "gpt2"
    at.selectbox(key="mem_model").set_value("meta-llama/Llama-2-70b-hf").run()
    shown = metrics(at)
    assert shown["Parameters"] == "69B" and shown["A100 80GB SXM GPUs to serve"] == "3"


def test_precision_context_and_stage_change_the_plan():
    at = run_page()
    before = metrics(at)
    at.selectbox(key="mem_weight_format").set_value("nf4").run()
    after = metrics(at)
    assert after["Serve on 1 GPU"] != before["Serve on 1 GPU"]
    assert after["Weights (nf4)"] == memory_plan.format_gb(
        sum(memory.weight_memory("meta-llama/Meta-Llama-3-8B", "nf4").values()))
    at.number_input(key="mem_context").set_value(32768).run()
    assert metrics(at)["KV cache"] == "4.29 GB"  # 8× the 4096-token cache
    at.radio(key="mem_stage").set_value(0).run()
    shown = metrics(at)
    assert shown["GPUs to train (DDP)"] == "never"  # 16 B/param × 8B = 128 GB never shrinks with DDP
    at.radio(key="mem_stage").set_value(3).run()
    assert metrics(at)["GPUs to train (ZeRO-3 / FSDP)"] == "3"
    at.selectbox(key="mem_recompute").set_value("full").run()
    assert metrics(at)["Train on 1 GPU"] != shown["Train on 1 GPU"]


def test_custom_gpu():
    at = run_page()
    at.selectbox(key="mem_gpu").set_value(memory_plan.CUSTOM_GPU).run()
    at.number_input(key="mem_custom_gpu_gb").set_value(24.0).run()
    shown = metrics(at)
    assert "Custom GPU (24 GB) GPUs to serve" in shown
    assert shown["Custom GPU (24 GB) GPUs to serve"] == "1"  # 21.11 GB ≤ 21.6 GB usable
    at.number_input(key="mem_headroom_pct").set_value(20.0).run()
    assert metrics(at)["Custom GPU (24 GB) GPUs to serve"] == "2"


def test_parameter_count_mode_and_bad_counts_keep_other_inputs():
    at = run_page()
    at.number_input(key="mem_context").set_value(8192).run()
    at.radio(key="mem_source").set_value("params").run()
    at.text_input(key="mem_params").set_value("70B").run()
    assert not at.exception
    shown = metrics(at)
    assert shown["Parameters"] == "70B" and shown["fp16/bf16 weights"] == "140.0 GB"
    assert any("closest catalog model" in i.value for i in at.info)
    for bad in ("-5", "seven", "0", "1e30"):
        at.text_input(key="mem_params").set_value(bad).run()
        assert not at.exception
        assert at.error and "parameter count" in at.error[0].value.lower()
        assert at.number_input(key="mem_context").value == 8192  # the rest of the plan's inputs survive
    at.text_input(key="mem_params").set_value("7B").run()
    assert metrics(at)["Parameters"] == "7B" and not at.error


def test_a_10000_character_parameter_count_is_quoted_short():
    """Issue 32: a 10,000-character paste was echoed whole in a red box several screens tall."""
    at = run_page()
    at.radio(key="mem_source").set_value("params").run()
    for pasted in ("y" * 10_000, "7" * 10_000):
        at.text_input(key="mem_params").set_value(pasted).run()
        assert not at.exception and len(at.error) == 1
        shown = at.error[0].value
        assert "parameter count" in shown and len(shown) < 200 and pasted[:40] + "…" in shown
    assert at.text_input(key="mem_params").value == "7" * 10_000  # the field keeps what was typed, to correct it


def test_pasted_config_json_good_and_bad():
    at = run_page()
    at.radio(key="mem_source").set_value("config").run()
    assert at.error  # nothing pasted yet: asks for a config
    gpt2 = {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257}
    at.text_area(key="mem_config_text").set_value(json.dumps(gpt2)).run()
    assert not at.exception and not at.error
    assert metrics(at)["Parameters"] == "124M"
    assert "cfg" in at.query_params
    for bad, fragment in (("{not json", "not valid JSON"), ("[1, 2]", "JSON object"),
                          ('{"model_type": "mamba", "hidden_size": 8}', "not supported"),
                          ('{"model_type": "llama", "hidden_size": 64}', "missing"),
                          ('{"model_type": "gpt2", "n_layer": -3}', "positive")):
        at.text_area(key="mem_config_text").set_value(bad).run()
        assert not at.exception, bad
        assert at.error and fragment in at.error[0].value, (bad, at.error[0].value if at.error else None)
        assert at.selectbox(key="mem_gpu").value == "A100 80GB SXM"


def test_query_params_restore_the_inputs():
    at = run_page({"model": "mistralai/Mistral-7B-v0.1", "ctx": "32768", "gpu": "H100 SXM", "stage": "1",
                   "fmt": "int8", "batch": "4"})
    assert at.selectbox(key="mem_model").value == "mistralai/Mistral-7B-v0.1"
    assert at.number_input(key="mem_context").value == 32768
    assert at.number_input(key="mem_batch").value == 4
    assert at.selectbox(key="mem_gpu").value == "H100 SXM"
    assert at.radio(key="mem_stage").value == 1
    assert at.selectbox(key="mem_weight_format").value == "int8"
    expected_kv = memory.model_kv_cache_bytes("mistralai/Mistral-7B-v0.1", 32768, 4, 2)  # window-capped
    assert metrics(at)["KV cache"] == memory_plan.format_gb(expected_kv) == "2.15 GB"
    assert any("Sliding-window" in i.value for i in at.info)
    assert not plan_warnings(at)


def test_invalid_query_values_fall_back_with_a_warning():
    at = run_page({"ctx": "abc", "model": "no-such-model", "gpu": "H100 SXM", "stage": "7"})
    assert len(plan_warnings(at)) == 3
    assert at.number_input(key="mem_context").value == 4096
    assert at.selectbox(key="mem_model").value == memory_plan.DEFAULT_MODEL
    assert at.radio(key="mem_stage").value == 3
    assert at.selectbox(key="mem_gpu").value == "H100 SXM"  # the valid values are kept


def test_link_from_the_compute_planner():
    at = run_page({"params": "26269641794"})
    assert at.radio(key="mem_source").value == "params"
    assert metrics(at)["Parameters"] == "26.3B"
    assert at.query_params["params"] == "26269641794"
    links = [m.value for m in at.markdown if "/compute?params=" in m.value]
    assert links and "params=26269641794" in links[0]


def test_config_travels_in_the_url():
    at = run_page()
    at.radio(key="mem_source").set_value("config").run()
    cfg = dict(architectures.CATALOG["Qwen/Qwen2.5-0.5B"])
    at.text_area(key="mem_config_text").set_value(json.dumps(cfg)).run()
    token = at.query_params["cfg"]
    again = run_page({"src": "config", "cfg": token})
    assert metrics(again)["Parameters"] == metrics(at)["Parameters"] == "494M"
    broken = run_page({"src": "config", "cfg": "%%%"})
    assert broken.warning and broken.error  # damaged link: a warning, then "paste a config"


def test_measure_tab_offers_measurement_of_the_chosen_architecture(default_page):
    subheaders = [s.value for s in default_page.subheader]
    assert "Measure on this machine" in subheaders
    metric_labels = [m.label for m in default_page.metric]
    assert "Predicted peak" in metric_labels  # the planner's prediction for Llama-3-8B at the training setting
    assert not default_page.exception


def test_measure_tab_clamps_to_learned_positions():
    at = run_page({"model": "gpt2"})
    assert not at.exception and not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "learned position embeddings for 1,024 tokens" in captions


def test_an_invalid_model_is_explained_once():
    """A bad parameter count gives one error at the input and one note in the summary, not one per tab."""
    at = run_page()
    at.radio(key="mem_source").set_value("params").run()
    at.text_input(key="mem_params").set_value("seven").run()
    assert not at.exception
    assert len(at.error) == 1 and "parameter count" in at.error[0].value.lower()
    notes = [i.value for i in at.info if "Choose a valid model" in i.value]
    assert len(notes) == 1, notes


def test_gb_column_helper_formats_only_gb_columns():
    from views.components.columns import gb_columns

    config = gb_columns(["GPU", "memory (GB)", "usable (GB)", "per GPU (GB)"], formats={"memory (GB)": "%.0f GB"},
                        helps={"usable (GB)": "minus headroom"})
    assert set(config) == {"memory (GB)", "usable (GB)", "per GPU (GB)"}
    assert config["memory (GB)"]["type_config"]["format"] == "%.0f GB"
    assert config["per GPU (GB)"]["type_config"]["format"] == "%.2f GB"
    assert config["usable (GB)"]["help"] == "minus headroom"


def test_finetune_tab_plans_lora_next_to_full_fine_tuning(default_page):
    from core.finetune import plan_finetune

    at = default_page
    assert "Fine-tune with LoRA / QLoRA / prompt tuning" in [s.value for s in at.subheader]
    shown = metrics(at)
    lora = plan_finetune("meta-llama/Meta-Llama-3-8B", "lora", 16, ["q", "k", "v", "o"], 1024, 4,
                         base_precision="bf16", dropout=0.05)
    full = plan_finetune("meta-llama/Meta-Llama-3-8B", "full", None, None, 1024, 4)
    assert shown["Trainable parameters"] == memory_plan.format_count(lora["trainable_params"]) == "13.6M"
    assert shown["LoRA peak memory"] == f"{lora['total_bytes'] / 1e9:.2f} GB"
    assert shown["Full fine-tuning peak"] == f"{full['total_bytes'] / 1e9:.2f} GB"
    assert lora["total_bytes"] < full["total_bytes"]
    table = next(d.value for d in at.dataframe if "full fine-tuning (GB)" in d.value.columns)
    assert "frozen base weights" in set(table["component"]) and "adapter optimizer states" in set(table["component"])


def test_finetune_tab_qlora_rank_and_bad_targets():
    at = run_page()
    at.radio(key="ft_method").set_value("qlora").run()
    assert not at.exception
    assert "QLoRA peak memory" in metrics(at)
    qlora_gb = float(metrics(at)["QLoRA peak memory"].split()[0])
    at.radio(key="ft_method").set_value("lora").run()
    assert float(metrics(at)["LoRA peak memory"].split()[0]) > qlora_gb  # 4-bit base: never more than LoRA
    before = metrics(at)["Trainable parameters"]
    at.number_input(key="ft_rank").set_value(64).run()
    assert metrics(at)["Trainable parameters"] != before
    at.number_input(key="ft_rank").set_value(5000).run()  # wider than Llama-3-8B's k/v projections (1,024)
    assert any("larger than the smallest adapted layer" in e.value for e in at.error)
    assert at.number_input(key="ft_seq").value == 1024  # other inputs kept
    at.number_input(key="ft_rank").set_value(8).run()
    at.selectbox(key="ft_preset").set_value("custom").run()
    at.multiselect(key="ft_custom").set_value([]).run()
    assert any("at least one target module" in e.value for e in at.error)
    assert not at.exception


def test_finetune_tab_plans_prompt_tuning_with_peft_s_count():
    from core.finetune import plan_finetune

    at = run_page()
    at.radio(key="ft_method").set_value("prompt-tuning").run()
    assert not at.exception
    assert "ft_rank" not in [n.key for n in at.number_input]  # no rank, targets or dropout for a soft prompt
    at.number_input(key="ft_virtual").set_value(50).run()
    shown = metrics(at)
    plan = plan_finetune("meta-llama/Meta-Llama-3-8B", "prompt-tuning", None, None, 1024, 4, num_virtual_tokens=50)
    assert plan["trainable_params"] == 50 * 4096
    assert shown["Trainable parameters"] == memory_plan.format_count(50 * 4096)
    assert shown["Prompt tuning peak memory"] == f"{plan['total_bytes'] / 1e9:.2f} GB"
    assert at.number_input(key="ft_seq").value == 1024  # the shared inputs kept across methods


def test_finetune_tab_needs_an_architecture():
    at = run_page()
    at.radio(key="mem_source").set_value("params").run()
    at.text_input(key="mem_params").set_value("7B").run()
    assert not at.exception
    assert any("Fine-tuning plans need an architecture" in i.value for i in at.info)


def _frame_with(at, column: str):
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert frames, column
    return frames[0]


@pytest.mark.long  # two rank processes: ~30 s here
def test_multi_gpu_tab_runs_a_real_distributed_step_here():
    """"Run it here": two strategies on 2 real rank processes; per-rank measured vs predicted, downloads, torchrun."""
    from tests.distributed.test_distributed import _workers

    at = run_page()
    assert at.button(key="dist_run").proto.help and at.multiselect(key="dist_strategies").proto.help
    predicted = _frame_with(at, "predicted peak per rank (MB)")
    assert list(predicted["strategy"]) == ["DDP", "ZeRO-1", "ZeRO-2-like (FSDP2)", "ZeRO-3 (FSDP2)"]
    at.multiselect(key="dist_strategies").set_value(["ddp", "zero3"]).run()
    at.button(key="dist_run").click().run(timeout=300)
    assert not at.exception and not at.error
    table = _frame_with(at, "volume error (%)")
    # one name per strategy in the picker, the table and the chart (issue 32)
    assert list(table["strategy"]) == ["DDP", "DDP", "ZeRO-3 (FSDP2)", "ZeRO-3 (FSDP2)"]
    assert list(table["rank"]) == [0, 1, 0, 1]
    assert (table["error (%)"].abs() < 10).all() and (table["volume error (%)"].abs() < 5).all()
    assert table.loc[2, "parameters held (MB)"] == pytest.approx(table.loc[0, "parameters held (MB)"] / 2, rel=0.01)
    labels = [d.proto.label for d in at.get("download_button")]
    assert "Download CSV" in labels and "Download JSON" in labels
    assert any("torchrun --nproc-per-node 2 -m core.distributed.worker" in c.value for c in at.code)
    assert not _workers()


def test_run_it_here_says_what_it_will_run_how_long_and_past_the_positions():
    """Issue 32: before a run, the setting it will use and an estimate; a sequence past the model's positions is
    named; a learned-position model refuses one; a run ended by Stop says how far it got."""
    at = run_page()
    header = next(m.value for m in at.markdown if "Predicted before running" in m.value)
    assert "2 ranks, 4 steps, 32 tokens × 1 per rank" in header and "for 4 strategies here" in header
    assert "about " in header and any("6·N FLOPs per token" in c.value for c in at.caption)
    at.number_input(key="dist_world").set_value(1).run()
    at.multiselect(key="dist_strategies").set_value(["ddp"]).run()
    header = next(m.value for m in at.markdown if "Predicted before running" in m.value)
    assert "1 rank," in header and "for 1 strategy here" in header
    at.number_input(key="dist_seq").set_value(8192).run()
    assert any("8,192 tokens is past this model's 256 positions" in c.value for c in at.caption)
    header = next(m.value for m in at.markdown if "Predicted before running" in m.value)
    assert "8,192 tokens" in header and not at.exception
    # A run still marked active when the script runs again was ended by Stop: the notice says how far it got.
    at.session_state["dist_active"] = {"total": 4, "runs_before": 0, "started": 0.0}
    at.run()
    assert any("Stopped after 0 of 4 strategies" in w.value for w in at.warning)
    at.run()
    assert not any("Stopped after" in w.value for w in at.warning)  # said once


def test_huge_inputs_keep_every_metric_short():
    """Issue 32: a 10¹⁵-parameter plan at a huge context showed 'Parameters 1e+03T' and a GPU count of 15 digits cut
    off in its box; every metric now reads in a few characters."""
    at = run_page({"params": "999960000000000"})
    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["Parameters"] == "1 × 10¹⁵"
    assert all("e+" not in v and len(v) <= 16 for v in values.values()), values


def test_run_it_here_refuses_a_sequence_past_learned_positions():
    at = run_page({"model": "gpt2"})
    at.selectbox(key="dist_model").set_value("planner").run()
    at.number_input(key="dist_seq").set_value(2048).run()
    assert any("learned position embeddings for 1,024 tokens" in w.value for w in at.warning)
    assert at.button(key="dist_run").disabled and not at.exception


def test_multi_gpu_run_is_refused_with_the_prediction_when_it_would_not_fit():
    at = run_page()
    planned_gpus = at.number_input(key="mem_n_gpus").value
    at.selectbox(key="dist_model").set_value("planner").run()  # Llama-3-8B on 8 CPU ranks: 128 GB per rank for DDP
    at.number_input(key="dist_world").set_value(8).run()
    refusals = [w.value for w in at.warning if "Not run" in w.value]
    assert refusals and "GB of RAM" in refusals[0] and "per rank" in refusals[0]
    assert at.button(key="dist_run").disabled
    at.multiselect(key="dist_strategies").set_value([]).run()
    assert any("at least one strategy" in w.value for w in at.warning)
    assert at.number_input(key="mem_n_gpus").value == planned_gpus and not at.exception  # the plan's inputs kept
