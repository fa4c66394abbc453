"""Inputs that could hurt the server (issue 10): huge configs, hostile JSON, long names, any server path, Markdown.

Core only (no Streamlit); the pages' handling is in tests/test_page_*.py ("hostile" tests).
"""
import json
import os

import pytest
from safetensors.torch import save_file
import torch

from core.run import model_policy
from core.plan import model_size
from core.common import safe_json
from core.plan.architectures import CATALOG
from core.plan.memory import GB
from core.run.model_policy import ModelPolicy, ModelPolicyError
from core.run.models import BUNDLED_DECODER, ModelLoadError, bundled_encoder_dir, load_model, random_model
from core.common.user_text import code, escape_markdown

LLAMA_70B = {k: v for k, v in CATALOG["meta-llama/Llama-2-70b-hf"].items() if k != "_name_or_path"}
# ~32 trillion parameters: more than any machine's memory, so the refusal never depends on the test machine.
ABSURD = {**LLAMA_70B, "num_hidden_layers": 10_000, "hidden_size": 16384, "num_attention_heads": 128,
          "num_key_value_heads": 128, "intermediate_size": 65536}


def _model_folder(tmp_path, cfg, weights=True):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    if weights:  # a real (tiny) safetensors file: transformers would go on to allocate the whole model
        save_file({"model.norm.weight": torch.ones(4)}, str(folder / "model.safetensors"))
    return folder


# ---- 1. size from the config before any load ---------------------------------------------------------------
def test_size_check_names_the_numbers():
    with pytest.raises(model_size.ModelTooLargeError) as err:
        model_size.check_fits(LLAMA_70B, "bf16", "cpu", free_bytes=5 * GB)
    message = str(err.value)
    assert "68,976,648,192 parameters" in message  # the planner's exact count of Llama 2 70B
    assert "137.95 GB at bf16" in message and "5.00 GB is free" in message


def test_size_check_passes_what_fits_and_uses_quantized_bytes():
    check = model_size.check_fits(CATALOG["gpt2"], torch.float32, "cpu", free_bytes=1 * GB)
    assert check.fits and check.needed_bytes == 124_439_808 * 4 and check.counted_by == "planner"
    nf4 = model_size.check_fits(LLAMA_70B, "bf16", "cpu", quantization="nf4", free_bytes=40 * GB)
    assert nf4.weight_format == "int4" and nf4.needed_bytes == pytest.approx(68_976_648_192 * 0.5)


def test_uncountable_or_absurd_shapes_are_refused_without_building():
    with pytest.raises(model_size.ModelTooLargeError, match="implausibly large"):
        model_size.check_fits({**LLAMA_70B, "hidden_size": 10**9}, "fp32", "cpu")
    with pytest.raises(model_size.ModelTooLargeError, match="cannot be computed"):
        model_size.check_fits({"model_type": "no-such-architecture", "hidden_size": 8}, "fp32", "cpu")


def test_model_types_the_planner_lacks_are_counted_on_the_meta_device():
    n, how = model_size.count_params({"model_type": "gpt_neox", "hidden_size": 64, "num_hidden_layers": 2,
                                      "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100})
    assert how == "meta" and n > 0


@pytest.mark.parametrize("weights", [True, False])
def test_load_model_refuses_a_folder_whose_config_is_too_big(tmp_path, weights):
    folder = _model_folder(tmp_path, ABSURD, weights)
    with pytest.raises(ModelLoadError, match=r"GB at fp32, but only [\d,.]+ GB is free"):
        load_model(str(folder))


def test_random_model_refuses_a_config_too_big():
    with pytest.raises(ModelLoadError, match="It was not loaded"):
        random_model(ABSURD)


# ---- 3. hostile JSON and names: clear messages, sizes capped before parsing --------------------------------
@pytest.mark.parametrize("text, expected", [
    ("[" * 10_000 + "]" * 10_000, "nests 10,000 levels"),
    ('{"model_type": "llama", "hidden_size": ' + "9" * 5000 + "}", "5,000-digit number"),
    ('{"model_type": "llama", "architectures": 5}', "'architectures' must be a list"),
    ('{"model_type": 7}', "'model_type' must be text"),
    ("{" + " " * 2_000_000 + "}", "longer than 1,000,000 characters"),
    ('{"a": NaN}', "NaN"),
    ("[1, 2]", "JSON object"),
    ('{"a": ', "not valid JSON"),
])
def test_hostile_json_gets_a_clear_message(text, expected):
    with pytest.raises(safe_json.JSONInputError, match=expected):
        safe_json.parse_config_json(text)


def test_depth_scan_ignores_brackets_inside_strings():
    assert safe_json.nesting_depth('{"a": "[[[[{{{{", "b": [1, {"c": "\\"]"}]}') == 3
    assert safe_json.parse_config_json('{"a": "' + "[" * 100 + '"}')["a"] == "[" * 100


@pytest.mark.parametrize("cfg_text, expected", [
    ("[" * 10_000 + "]" * 10_000, "nests 10,000 levels"),
    ('{"model_type": "llama", "hidden_size": ' + "9" * 5000 + "}", "5,000-digit"),
    ('{"model_type": "llama", "architectures": 5}', "'architectures' must be a list"),
])
def test_load_model_reads_a_hostile_config_json_safely(tmp_path, cfg_text, expected):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(cfg_text)
    with pytest.raises(ModelLoadError, match=expected):
        load_model(str(folder))


def test_a_5000_character_model_name_is_a_clear_message():
    with pytest.raises(ModelLoadError, match="5,000 characters long; the limit is 1,000"):
        load_model("a" * 5000)
    with pytest.raises(ModelLoadError, match="limit is 1,000"):
        load_model("/" + "b" * 5000)


# ---- 2. model path policy ----------------------------------------------------------------------------------
def test_policy_defaults_follow_the_server_address():
    for address in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert model_policy.policy_for_server(address, env={}) == model_policy.OPEN
    for address in ("", None, "0.0.0.0", "192.168.1.5", "::"):
        policy = model_policy.policy_for_server(address, env={})
        assert policy.exposed and not policy.any_local_path and not policy.allow_hub and policy.roots == ()


def test_policy_settings_from_env_win_over_secrets(tmp_path):
    env = {"LLM_LAB_MODEL_ROOTS": f"{tmp_path}{os.pathsep}/srv/models", "LLM_LAB_ALLOW_HUB": "1"}
    policy = model_policy.policy_for_server("0.0.0.0", env=env, secrets={"allow_hub": False, "roots": ["/x"]})
    assert policy.allow_hub and policy.roots == (os.path.realpath(tmp_path), "/srv/models")
    from_secrets = model_policy.policy_for_server("0.0.0.0", env={}, secrets={"allow_hub": True, "roots": ["/x"]})
    assert from_secrets.allow_hub and from_secrets.roots == ("/x",)
    with pytest.raises(ModelPolicyError, match="1/true or 0/false"):
        model_policy.policy_for_server("0.0.0.0", env={"LLM_LAB_ALLOW_HUB": "maybe"})


EXPOSED = model_policy.policy_for_server("0.0.0.0", env={})


def test_exposed_server_does_not_reveal_whether_a_path_exists(tmp_path):
    (tmp_path / "exists").mkdir()
    messages = []
    for name in (str(tmp_path / "exists"), str(tmp_path / "missing"), "/etc", "/no/such/dir"):
        with pytest.raises(ModelLoadError) as err:
            load_model(name, policy=EXPOSED)
        messages.append(str(err.value).replace(name, "NAME"))
    assert len(set(messages)) == 1, messages
    assert "does not exist" not in messages[0] and "config.json" not in messages[0]


def test_exposed_server_loads_bundled_models_and_folders_under_its_roots(tmp_path):
    assert load_model("minilm", policy=EXPOSED).kind == "encoder"
    assert load_model(str(bundled_encoder_dir()), policy=EXPOSED).kind == "encoder"  # bundled folder by path
    root = tmp_path / "models"
    (root / "a").mkdir(parents=True)
    policy = model_policy.policy_for_server("0.0.0.0", env={"LLM_LAB_MODEL_ROOTS": str(root)})
    source = model_policy.resolve_source(str(root / "a"), policy)
    assert source.kind == "folder"
    with pytest.raises(ModelPolicyError, match="is not a model this server loads"):
        model_policy.resolve_source(str(root / "a" / ".." / ".." / "elsewhere"), policy)  # no escaping the root
    with pytest.raises(ModelPolicyError, match="is not a model this server loads"):
        model_policy.resolve_source(str(root) + "-sibling", policy)


def test_exposed_server_refuses_hub_ids_unless_allowed():
    with pytest.raises(ModelLoadError, match="is not a model this server loads"):
        load_model("gpt2", policy=EXPOSED)
    hub = ModelPolicy(any_local_path=False, allow_hub=True, exposed=True)
    assert model_policy.resolve_source("openai-community/gpt2", hub).kind == "hub"


def test_loopback_keeps_todays_freedom(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "missing"))
    assert model_policy.resolve_source(str(tmp_path), model_policy.OPEN).kind == "folder"
    assert model_policy.resolve_source("owner/model", model_policy.OPEN).kind == "hub"


# ---- 4. user text inside Markdown messages -----------------------------------------------------------------
def test_code_spans_and_escapes_keep_markdown_inert():
    assert code("![x](http://127.0.0.1:9/x.png)") == "`![x](http://127.0.0.1:9/x.png)`"
    assert code("a`b") == "``a`b``" and code("`x`") == "`` `x` ``"
    assert len(code("z" * 5000)) < 200 and "5,000 characters" in code("z" * 5000)
    assert escape_markdown("![x](y), 5,000-digit") == "\\!\\[x\\]\\(y\\), 5,000-digit"


def test_model_load_errors_quote_the_name_as_code():
    name = "![x](http://127.0.0.1:9/x.png)"
    with pytest.raises(ModelLoadError) as err:
        load_model(name)
    assert f"`{name}`" in str(err.value) and BUNDLED_DECODER in str(err.value)
