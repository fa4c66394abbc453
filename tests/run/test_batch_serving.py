"""core.run.batch_serving: concurrent sessions share transformers' continuous batch on a CUDA GPU; elsewhere they take
turns (core.common.scheduler) and the reason is stated."""
import threading

import pytest
import torch

from core.run.batch_serving import ContinuousBatchServer, batch_server, batching_available
from core.run.generation import generate_kwargs, generate_text, prepare_generation
from core.run.models import load_model
from core.run.sampling import DecodingSettings

PROMPTS = ["The capital of France is", "Water boils at", "My favourite colour is", "Once upon a time"]


def test_cpu_models_are_not_batched_and_say_why():
    loaded = load_model(device="cpu")
    ok, reason = batching_available(loaded)
    assert not ok and "CUDA" in reason
    with pytest.raises(RuntimeError, match="CUDA"):
        ContinuousBatchServer(loaded)


@pytest.mark.gpu
def test_concurrent_greedy_sessions_share_a_continuous_batch_and_get_their_solo_results():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    loaded = load_model(device="cuda", dtype="fp32")
    assert batching_available(loaded) == (True, "")
    settings = DecodingSettings(max_new_tokens=12)
    solo = []
    for prompt in PROMPTS:  # plain model.generate(), one at a time
        prepared, checked = prepare_generation(loaded, prompt, settings)
        ids = prepared.input_ids.to(loaded.device)
        out = loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **generate_kwargs(loaded, checked.settings))
        solo.append(loaded.tokenizer.decode(out[0, ids.shape[1]:].tolist(), skip_special_tokens=True))
    results, errors = {}, []

    def session(i):
        try:
            results[i] = generate_text(loaded, PROMPTS[i], max_new_tokens=12)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(PROMPTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors
    assert [results[i] for i in range(len(PROMPTS))] == solo
    served = batch_server(loaded).generate(prepared.input_ids[0].tolist(), 12)
    assert served.error is None and 0 < len(served.token_ids) <= 12 and served.total_s > 0
