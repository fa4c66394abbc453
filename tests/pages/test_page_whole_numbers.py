"""Issue 32 item 4: a whole number out of range used to turn red in the browser while the page went on with the old
value (Layers to remove = 99999 ran with 4). Now the entry reaches the page, which names the range, keeps the entry
and disables the action until it is back in range, on Optimize, Fine-tune and the memory planner's Run it here."""
import pytest

from tests.apptest import app_test


@pytest.fixture(autouse=True)
def sixteen_gb_free(monkeypatch):
    import core.plan.hardware

    monkeypatch.setattr(core.plan.hardware, "free_device_memory_bytes", lambda *args, **kwargs: 16e9)


def _messages(at) -> str:
    return " ".join(str(e.value) for e in list(at.warning) + list(at.error)).replace("\\", "")  # unescaped


@pytest.mark.parametrize("page, key, value, button, words", [
    ("views/optimize.py", "op_remove", 99_999, "op_prune_run", "Layers to remove must be at most 60"),
    ("views/optimize.py", "op_remove", 0, "op_prune_run", "Layers to remove must be at least 1"),
    ("views/optimize.py", "op_d_steps", 100_000, "op_distil_run", "Steps must be at most"),
    ("views/finetune.py", "ft_rank", -1, "ft_start", "Rank r must be at least 1"),
    ("views/finetune.py", "ft_steps", 10_001, "ft_start", "Steps must be at most 10,000"),
    ("views/memory_planner.py", "dist_world", 9, "dist_run", "Ranks (world size) must be at most 8"),
    ("views/memory_planner.py", "dist_world", 0, "dist_run", "Ranks (world size) must be at least 1"),
    ("views/memory_planner.py", "dist_steps", 3, "dist_run", "Steps must be at least 4"),
])
def test_an_entry_out_of_range_is_named_kept_and_blocks_the_action(page, key, value, button, words):
    at = app_test(page, timeout=120)
    at.run()
    assert not at.exception and not at.button(key=button).disabled
    before = at.number_input(key=key).value
    assert "Allowed:" in at.number_input(key=key).help  # the range is on the field's help
    at.number_input(key=key).set_value(value).run()
    assert not at.exception
    assert words in _messages(at) and f"{value:,} was entered" in _messages(at)
    assert at.number_input(key=key).value == value  # the entry is kept, not replaced by the old value
    assert at.button(key=button).disabled
    at.number_input(key=key).set_value(before).run()
    assert not at.button(key=button).disabled and words not in _messages(at)
