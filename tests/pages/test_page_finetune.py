"""Fine-tune page under Streamlit's AppTest: every control has help, bad input shows a clear message with the
inputs kept and Start disabled, and a tiny real run (2 steps) shows its results and the adapter download."""

import pytest

from tests.apptest import app_test

PAGE = "views/finetune.py"
KEYS = ("ft_rank", "ft_alpha", "ft_dropout", "ft_lr", "ft_steps", "ft_seq", "ft_batch", "ft_seed", "ft_answer_tokens")


@pytest.fixture(autouse=True)
def sixteen_gb_free(monkeypatch):
    """The page refuses runs that would not fit in free memory; pin it (AppTest runs in this process) so the
    outcome depends on the page, not on what else this machine is running."""
    import core.plan.hardware

    monkeypatch.setattr(core.plan.hardware, "free_device_memory_bytes", lambda *args, **kwargs: 16e9)


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def test_controls_have_help_and_the_plan_is_shown():
    at = app_test(PAGE)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Fine-tune"
    for key in KEYS:
        assert at.number_input(key=key).help, key
    assert at.multiselect(key="ft_targets").help
    assert at.button(key="ft_start").help and at.button(key="ft_stop").help
    assert not at.button(key="ft_start").disabled
    assert "trainable parameters" in _texts(at.caption) and "Predicted peak" in _texts(at.caption)
    assert len(at.error) == 0


@pytest.mark.parametrize("key, value, words", [
    ("ft_rank", 0, "at least 1"),
    ("ft_rank", 1000, "larger than the smallest adapted layer"),
    ("ft_seq", 8192, "would not fit"),
    ("ft_seq", 16, "too short"),
])
def test_bad_input_shows_a_message_keeps_inputs_and_disables_start(key, value, words):
    at = app_test(PAGE)
    at.run()
    at.number_input(key="ft_lr").set_value(0.001)
    if key == "ft_seq":
        at.number_input(key="ft_batch").set_value(512)
    at.number_input(key=key).set_value(value).run()
    assert not at.exception
    assert words in _texts(at.error)
    assert at.number_input(key=key).value == value
    assert at.number_input(key="ft_lr").value == 0.001
    assert at.button(key="ft_start").disabled


def test_no_target_module_is_a_clear_message():
    at = app_test(PAGE)
    at.run()
    at.multiselect(key="ft_targets").set_value([]).run()
    assert not at.exception
    assert "target module" in _texts(at.error)
    assert at.button(key="ft_start").disabled


def test_a_tiny_run_shows_results_and_the_download():
    at = app_test(PAGE, timeout=900)
    at.run()
    at.number_input(key="ft_steps").set_value(2)
    at.number_input(key="ft_seq").set_value(48)
    at.number_input(key="ft_batch").set_value(1)
    at.number_input(key="ft_answer_tokens").set_value(3)
    at.button(key="ft_start").click().run()
    assert not at.exception
    run = at.session_state["ft_run"]
    assert run.wait(timeout=1800) is not None, run.error
    at.run()
    assert not at.exception
    assert "Loss, last step (nats/token)" in [m.label for m in at.metric]
    assert all(m.proto.help for m in at.metric), [m.label for m in at.metric if not m.proto.help]
    assert len(at.get("download_button")) == 1
    assert any(m.value == "**Base + LoRA adapter**" for m in at.markdown) and not at.text_area
    assert run.model_released


def test_prompt_tuning_is_a_method_with_its_exact_count_and_a_real_run():
    at = app_test(PAGE, timeout=900)
    at.run()
    assert at.radio(key="ft_method").help
    at.radio(key="ft_method").set_value("prompt-tuning").run()
    assert not at.exception and not at.error
    assert at.number_input(key="ft_virtual_tokens").help
    assert at.number_input(key="ft_lr_prompt_tuning").value == 0.03
    keys = {n.key for n in at.number_input}
    assert "ft_rank" not in keys and "ft_alpha" not in keys  # LoRA's own controls are not shown
    assert "11,520 trainable parameters = 20 virtual tokens × 576" in _texts(at.caption)
    at.number_input(key="ft_virtual_tokens").set_value(4).run()
    assert "2,304 trainable parameters" in _texts(at.caption)
    at.number_input(key="ft_steps").set_value(2)
    at.number_input(key="ft_batch").set_value(1)
    at.number_input(key="ft_answer_tokens").set_value(3)
    at.button(key="ft_start").click().run()
    run = at.session_state["ft_run"]
    assert run.wait(timeout=1800) is not None, run.error
    at.run()
    assert not at.exception
    assert run.result.trainable_params == 2304
    assert any(m.value == "**Base + soft prompt**" for m in at.markdown) and not at.text_area
    assert at.radio(key="ft_method").value == "prompt-tuning"


def test_start_help_follows_the_method_and_a_long_run_is_estimated_before_it_starts():
    """Issue 32: with prompt tuning the Start button spoke of LoRA adapters, and 10,000 steps (hours here) were
    accepted without a word."""
    from core.finetune import pace

    pace.forget_paces()
    at = app_test(PAGE)
    at.run()
    assert "LoRA adapters" in at.button(key="ft_start").help
    assert "about" in _texts(at.caption) and "s/step" in _texts(at.caption)  # the default run: a caption
    at.radio(key="ft_method").set_value("prompt-tuning").run()
    assert "LoRA" not in at.button(key="ft_start").help and "soft-prompt" in at.button(key="ft_start").help
    at.number_input(key="ft_steps").set_value(10_000).run()
    assert not at.exception and not at.button(key="ft_start").disabled
    warning = _texts(at.warning)
    assert "10,000 steps takes about" in warning and " h " in warning and "assumed" in warning


def test_the_answers_are_readable_text_and_the_status_says_its_state_once():
    """A finished run (built here, not trained) shows its answers as text, not greyed-out disabled boxes, and its
    progress label reads "Finished: step 2/2, …" (not "Finished. done")."""
    from core.finetune.results import Comparison, FinetuneProgress, FinetuneResult, FinetuneStep
    from core.finetune.settings import FinetuneSettings

    steps = (FinetuneStep(1, 3.387, 60, 0.8, 0.8), FinetuneStep(2, 2.5, 60, 0.8, 1.6))
    result = FinetuneResult(FinetuneSettings(steps=2), steps, False, 1.6, 1000,
                            (Comparison("Say hi", "Hello! *How* are you?", "Ahoy, matey!\nArr."),),
                            {"adapter_config.json": b"{}"})

    class Finished:
        def __init__(self):
            self.result = result

        def progress(self):
            return FinetuneProgress("done", 2, 2, 2.5, 75.0, 3.0, "Finished.")

        def steps(self):
            return list(steps)

    run = Finished()
    at = app_test(PAGE)
    at.session_state["ft_run"] = run
    at.session_state["ft_shown"] = run
    at.run()
    assert not at.exception
    assert not at.text_area
    shown = [m.value for m in at.markdown]
    assert "**Base model**" in shown and "**Base + LoRA adapter**" in shown
    assert r"Hello\! \*How\* are you?" in shown  # the answer's own characters, not Markdown
    assert "Ahoy, matey\\!  \nArr." in shown
    label = at.get("progress")[0].proto.text
    assert label.startswith("Finished: step 2/2") and "done" not in label
