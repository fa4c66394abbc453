"""core.run.models with the real bundled models and real bitsandbytes."""
import sys

import pytest
import torch
from transformers import AutoConfig

from core.run import models
from core.run.models import (
    BUNDLED_DECODER,
    BUNDLED_ENCODER,
    ModelLoadError,
    detect_kind,
    load_model,
    random_model,
    release_model,
    resolve_dtype,
    select_device,
)


@pytest.fixture(scope="module")
def decoder():
    return load_model()


@pytest.fixture(scope="module")
def encoder():
    return load_model("minilm")


def test_bundled_decoder_is_the_real_smollm2(decoder):
    assert decoder.name == BUNDLED_DECODER
    assert decoder.kind == "decoder"
    assert decoder.random_weights is False
    assert decoder.device == select_device("auto")
    assert decoder.num_parameters == 134_515_008  # architectures.md: SmolLM2-135M-Instruct, tied embeddings
    model = decoder.model
    assert model.config.tie_word_embeddings
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    assert decoder.context_window == 8192
    assert decoder.has_chat_template
    assert "<|im_start|>" in decoder.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


def test_bundled_decoder_generates_sensible_text(decoder):
    ids = decoder.tokenizer("The capital of France is", return_tensors="pt").to(decoder.device)
    out = decoder.model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in decoder.tokenizer.decode(out[0, ids["input_ids"].shape[1]:])


def test_conversion_cache_is_complete_and_outside_the_repo(decoder):
    folder = models.bundled_decoder_cache_dir()
    assert models.bundled._is_complete_model_dir(folder) and models.bundled_decoder_is_converted()
    assert "/work/main" not in str(folder.resolve())
    leftovers = [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]
    assert not [p for p in leftovers if str(__import__("os").getpid()) in p.name]


@pytest.mark.parametrize("alias", ["smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct", BUNDLED_DECODER, None, ""])
def test_decoder_aliases(alias):
    assert models.canonical_name(alias) == BUNDLED_DECODER


@pytest.mark.parametrize("alias", ["minilm", "all-MiniLM-L6-v2", BUNDLED_ENCODER])
def test_encoder_aliases(alias):
    assert models.canonical_name(alias) == BUNDLED_ENCODER


def test_bundled_encoder(encoder):
    assert encoder.kind == "encoder"
    assert encoder.name == BUNDLED_ENCODER
    batch = encoder.tokenizer("Attention is all you need.", return_tensors="pt")
    with torch.no_grad():
        out = encoder.model(**batch)
    assert out.last_hidden_state.shape[-1] == 384
    assert encoder.context_window == 512


@pytest.mark.parametrize("name", ["no-such-org/no-such-model", "gpt2"])
def test_unavailable_hub_id_names_the_bundled_models(name):
    with pytest.raises(ModelLoadError) as info:
        load_model(name)
    message = str(info.value)
    assert name in message and BUNDLED_DECODER in message and BUNDLED_ENCODER in message


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "missing"))


def test_local_folder_loads_through_auto_classes():
    folder = models.bundled_encoder_dir()
    loaded = load_model(str(folder))
    assert loaded.kind == "encoder" and loaded.source.startswith("local folder")


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert select_device("auto").type == expected
    with pytest.raises(ModelLoadError):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA"):
            select_device("cuda")


def test_resolve_dtype():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype(torch.float16, cpu) == torch.float16
    with pytest.raises(ModelLoadError, match="dtype"):
        resolve_dtype("fp8", cpu)


def test_fp16_on_cpu_runs_with_a_note(encoder):
    # torch 2.13 runs fp16 matmuls on CPU (emulated, slow), so fp16 is allowed there with an explanation.
    loaded = load_model("minilm", dtype="fp16", device="cpu")
    assert loaded.model.dtype == torch.float16
    assert any("fp16" in note for note in loaded.notes)
    batch = loaded.tokenizer("hello world", return_tensors="pt")
    with torch.no_grad():
        half = loaded.model(**batch).last_hidden_state.float()
        full = encoder.model.to("cpu")(**batch).last_hidden_state
    assert torch.allclose(half, full, atol=5e-2)


@pytest.mark.parametrize("quantization", ["int8", "nf4", "fp4"])
def test_bitsandbytes_quantization_runs_on_this_machine(quantization, encoder):
    loaded = load_model("minilm", quantization=quantization, device="cpu")
    assert loaded.quantization == quantization
    assert loaded.memory_bytes < encoder.memory_bytes
    linear = loaded.model.encoder.layer[0].attention.self.query
    assert "bitsandbytes" in type(linear).__module__
    batch = loaded.tokenizer("quantized encoders still encode", return_tensors="pt")
    with torch.no_grad():
        out = loaded.model(**batch).last_hidden_state
    assert torch.isfinite(out).all()


def test_unknown_quantization_is_refused():
    with pytest.raises(ModelLoadError, match="quantization"):
        load_model("minilm", quantization="int3")


def test_random_t5_pairs_with_minilm_tokenizer():
    config = {"model_type": "t5", "d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_heads": 4}
    first = random_model(config, attn_implementation="eager", seed=3)
    second = random_model(config, attn_implementation="eager", seed=3)
    assert first.kind == "encoder-decoder" and first.random_weights
    assert first.model.config.vocab_size == len(first.tokenizer) == 30522
    assert torch.equal(first.model.shared.weight, second.model.shared.weight)
    batch = first.tokenizer("a tiny random T5", return_tensors="pt")
    with torch.no_grad():
        out = first.model(**batch, decoder_input_ids=batch["input_ids"][:, :3], output_attentions=True)
    assert out.cross_attentions[0].shape[1] == 4


def test_random_model_rejects_a_config_without_type():
    with pytest.raises(ModelLoadError, match="model_type"):
        random_model({"hidden_size": 8})


def test_detect_kind():
    assert detect_kind(AutoConfig.for_model("bert")) == "encoder"
    assert detect_kind(AutoConfig.for_model("llama")) == "decoder"
    assert detect_kind(AutoConfig.for_model("t5")) == "encoder-decoder"
    assert detect_kind(AutoConfig.for_model("gpt2")) == "decoder"


def test_release_model_drops_the_weights():
    loaded = random_model({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                           "num_attention_heads": 2, "intermediate_size": 64})
    release_model(loaded)
    assert loaded.model is None
    release_model(None)


def test_load_tokenizer_resolves_names_like_load_model(tmp_path):
    from core.run.models import load_tokenizer

    assert load_tokenizer("smollm2").vocab_size == load_tokenizer("HuggingFaceTB/SmolLM2-135M-Instruct").vocab_size
    assert load_tokenizer().vocab_size == load_tokenizer(str(models.bundled_encoder_dir())).vocab_size == 30522
    missing = tmp_path / "no-such-model"
    for load in (load_tokenizer, load_model):
        with pytest.raises(ModelLoadError, match="does not exist"):
            load(str(missing))


def test_the_bundled_packages_stay_found_while_sys_path_changes(monkeypatch):
    """Streamlit inserts and removes a script's folder in sys.path on every run; a lookup walking sys.path on another
    thread at that moment once skipped site-packages, and a fine-tune reported the bundled model "not installed"
    (CI, 2026-12-08). Once found, the bundled files are known without another walk; a walk that truly finds nothing
    still says how to install them."""
    from core.run.models import bundled

    gguf, encoder = models.bundled_gguf_path(), models.bundled_encoder_dir()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    assert models.bundled_gguf_path() == gguf and models.bundled_encoder_dir() == encoder
    monkeypatch.setattr(bundled, "_LOCATED", {})
    with pytest.raises(ModelLoadError, match="not installed"):
        models.bundled_gguf_path()
    with pytest.raises(ModelLoadError, match="not installed"):
        models.bundled_encoder_dir()
