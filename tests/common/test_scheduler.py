"""core.common.scheduler: first-come-first-served turns at the model, per-request caps, and concurrent generation with the
real bundled SmolLM2 (every session gets exactly its own result, in arrival order, with no stuck slot)."""
import gc
import threading
import time

import psutil
import pytest

from core.run.generation import run_generation, stream_generation
from core.run.models import load_model
from core.run.sampling import DecodingSettings
from core.common.scheduler import (
    DEFAULT_MAX_GENERATION_S,
    DEFAULT_MAX_NEW_TOKENS,
    ENV_MAX_GENERATION_S,
    ENV_MAX_NEW_TOKENS,
    GENERATION_QUEUE,
    AdmissionQueue,
    QueueLeft,
    describe_limits,
    describe_wait,
    request_limits,
)


def wait_until(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------------------------------------------------------------
# The queue on its own


def test_tickets_are_admitted_in_arrival_order_and_see_their_positions():
    q = AdmissionQueue(slots=1, max_service_s=10.0)
    holder = q.join("holder")
    assert q.status(holder).state == "running"
    tickets = [q.join(f"t{i}") for i in range(4)]
    assert [q.status(t).position for t in tickets] == [1, 2, 3, 4]
    assert all(q.status(t).waiting == 4 and q.status(t).running == 1 for t in tickets)
    admitted = []

    def worker(ticket):
        q.wait(ticket)
        admitted.append(ticket.label)
        q.release(ticket)

    threads = [threading.Thread(target=worker, args=(t,)) for t in reversed(tickets)]  # start order does not matter
    for thread in threads:
        thread.start()
    q.release(holder)
    for thread in threads:
        thread.join(60)
    assert admitted == ["t0", "t1", "t2", "t3"]
    assert q.snapshot()["waiting"] == 0 and q.snapshot()["running"] == 0
    assert q.snapshot()["measured_runs"] == 5


def test_leaving_while_waiting_frees_the_place_and_leaves_no_stuck_slot():
    q = AdmissionQueue(slots=1)
    holder, second, third = q.join("a"), q.join("b"), q.join("c")
    q.release(second)  # Stop while queued
    assert q.status(second).state == "left"
    assert q.status(third).position == 1
    with pytest.raises(QueueLeft):
        q.wait(second, timeout=0.1)
    q.release(holder)
    assert q.wait(third, timeout=5)
    q.release(third)
    q.release(third)  # idempotent
    assert q.snapshot() | {"measured_runs": 0, "mean_run_s": None} == {
        "waiting": 0, "running": 0, "slots": 1, "measured_runs": 0, "mean_run_s": None}
    with q.admit("after"):  # the slot is free again
        pass


def test_admit_leaves_the_line_when_cancelled_and_releases_on_errors():
    q = AdmissionQueue(slots=1)
    holder = q.join("holder")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(QueueLeft):
        with q.admit("cancelled", cancel=cancel, poll_s=0.05):
            pass
    assert q.snapshot()["waiting"] == 0
    q.release(holder)
    with pytest.raises(RuntimeError, match="boom"):
        with q.admit("failing"):
            raise RuntimeError("boom")
    assert q.snapshot()["running"] == 0


def test_a_vanished_waiting_session_is_dropped_and_never_blocks_the_line():
    q = AdmissionQueue(slots=1, stale_after_s=3.0)  # alive polls every 0.05 s: far inside 3 s even on a busy machine
    holder = q.join("holder")
    vanished = q.join("closed tab")  # never polls again
    alive = q.join("alive")
    wait_until(lambda: not q.wait(alive, timeout=0.05) and q.status(vanished).state == "left", 30, "the stale drop")
    assert q.status(alive).position == 1
    q.release(holder)
    assert q.wait(alive, timeout=5)


def test_estimate_only_after_measured_runs_and_bounded_by_the_time_cap():
    q = AdmissionQueue(slots=1, max_service_s=5.0)
    first = q.join("first")
    waiting = q.join("second")
    status = q.status(waiting)
    assert status.estimated_wait_s is None  # nothing measured yet: no made-up number
    assert 0 < status.max_wait_s <= 5.0  # what is left of the running request's cap
    q.release(first)
    q.wait(waiting, timeout=5)
    third = q.join("third")
    fourth = q.join("fourth")
    status = q.status(fourth)
    assert status.position == 2 and status.estimated_wait_s is not None and status.estimated_wait_s >= 0
    assert 5.0 < status.max_wait_s <= 10.0  # the running one's rest plus one full capped turn
    assert "position 2 of 2 waiting" in describe_wait(status) and "at most" in describe_wait(status)
    for t in (waiting, third, fourth):
        q.release(t)


def test_request_limits_from_the_environment():
    assert request_limits({}) == request_limits({ENV_MAX_NEW_TOKENS: " "})
    assert request_limits({}).max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    assert request_limits({}).max_generation_s == DEFAULT_MAX_GENERATION_S
    limits = request_limits({ENV_MAX_NEW_TOKENS: "64", ENV_MAX_GENERATION_S: "7.5"})
    assert (limits.max_new_tokens, limits.max_generation_s, limits.notes) == (64, 7.5, ())
    bad = request_limits({ENV_MAX_NEW_TOKENS: "lots", ENV_MAX_GENERATION_S: "-3"})
    assert (bad.max_new_tokens, bad.max_generation_s) == (DEFAULT_MAX_NEW_TOKENS, DEFAULT_MAX_GENERATION_S)
    assert len(bad.notes) == 2 and ENV_MAX_NEW_TOKENS in bad.notes[0] and ENV_MAX_GENERATION_S in bad.notes[1]
    text = describe_limits(limits)
    assert "64 new tokens" in text and "8 s" in text and ENV_MAX_NEW_TOKENS in text


# ---------------------------------------------------------------------------------------------------------------------
# Concurrent generation with the real model

PROMPTS = ["The capital of France is", "Water boils at", "My favourite colour is", "Once upon a time"]


@pytest.fixture(scope="module")
def lm():
    return load_model()


def settings_for(i: int) -> DecodingSettings:
    return DecodingSettings.for_mode("sampling", temperature=0.9, top_k=40, top_p=0.95, max_new_tokens=8, seed=100 + i)


def test_concurrent_sessions_get_exactly_their_solo_results_in_arrival_order(lm):
    solo = [run_generation(lm, PROMPTS[i], settings_for(i)).token_ids for i in range(len(PROMPTS))]
    assert len({tuple(ids) for ids in solo}) == len(PROMPTS)  # different prompts and seeds, different results
    blocker = GENERATION_QUEUE.join("test blocker")
    first_status, results, errors = {}, {}, []

    def session(i, stream):
        try:
            for status in stream.wait_for_turn(poll_s=0.05):
                first_status.setdefault(i, status)  # what the page shows first
            for _ in stream:
                pass
            results[i] = stream.result
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    streams = [stream_generation(lm, PROMPTS[i], settings_for(i)) for i in range(len(PROMPTS))]
    threads = []
    try:
        for i, stream in enumerate(streams):  # arrive one after another: session i is i-th in line
            threads.append(threading.Thread(target=session, args=(i, stream)))
            threads[-1].start()
            wait_until(lambda: GENERATION_QUEUE.snapshot()["waiting"] == i + 1, 60, f"session {i} to queue")
        wait_until(lambda: len(first_status) == len(PROMPTS), 60, "every session to see its place")
    finally:
        GENERATION_QUEUE.release(blocker)
    for thread in threads:
        thread.join(300)
    assert not errors
    assert [first_status[i].position for i in range(len(PROMPTS))] == [1, 2, 3, 4]
    assert [results[i].token_ids for i in range(len(PROMPTS))] == solo
    admitted = [streams[i]._ticket.admitted_s for i in range(len(PROMPTS))]
    assert admitted == sorted(admitted)  # first come, first served
    waits = [results[i].queue_wait_s for i in range(len(PROMPTS))]
    assert waits == sorted(waits) and waits[0] > 0
    for r in results.values():  # the wait is counted in what the user saw
        assert r.user_ttft_s == pytest.approx(r.queue_wait_s + r.ttft_s)
        assert r.to_dict()["queue_wait_s"] == r.queue_wait_s
    assert GENERATION_QUEUE.snapshot()["waiting"] == 0 and GENERATION_QUEUE.snapshot()["running"] == 0


def test_stop_while_queued_leaves_the_line(lm):
    blocker = GENERATION_QUEUE.join("test blocker")
    stream = stream_generation(lm, PROMPTS[0], settings_for(0))
    done = threading.Event()
    thread = threading.Thread(target=lambda: (list(stream), done.set()))
    try:
        thread.start()
        wait_until(lambda: GENERATION_QUEUE.snapshot()["waiting"] == 1, 60, "the stream to queue")
        stream.stop()
        assert done.wait(30)
        assert GENERATION_QUEUE.snapshot()["waiting"] == 0  # no stuck place
    finally:
        GENERATION_QUEUE.release(blocker)
    thread.join(30)
    result = stream.snapshot()
    assert result.stop_reason == "stopped" and result.new_tokens == 0
    assert run_generation(lm, PROMPTS[1], settings_for(1)).new_tokens > 0  # the line still moves


@pytest.mark.long  # rounds of concurrent SmolLM2 sessions: ~13 s here
def test_memory_stays_bounded_across_rounds_of_concurrent_sessions(lm):
    process = psutil.Process()
    rss = []
    for _ in range(3):
        threads = [threading.Thread(target=run_generation, args=(lm, PROMPTS[i], settings_for(i)))
                   for i in range(len(PROMPTS))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        gc.collect()
        rss.append(process.memory_info().rss)
        assert GENERATION_QUEUE.snapshot()["waiting"] == 0 and GENERATION_QUEUE.snapshot()["running"] == 0
    assert rss[-1] - rss[0] < 64 * 2**20, f"RSS grew across rounds: {rss}"


def test_per_request_caps_apply_and_are_explained(lm, monkeypatch):
    monkeypatch.setenv(ENV_MAX_NEW_TOKENS, "3")
    capped = run_generation(lm, PROMPTS[0], DecodingSettings(max_new_tokens=20, seed=0))
    assert capped.settings.max_new_tokens == 3 and capped.new_tokens <= 3
    assert any(ENV_MAX_NEW_TOKENS in note and "capped at 3" in note for note in capped.notes)
    monkeypatch.setenv(ENV_MAX_NEW_TOKENS, "400")
    monkeypatch.setenv(ENV_MAX_GENERATION_S, "0.05")
    timed = run_generation(lm, "The history of the Roman empire", DecodingSettings(max_new_tokens=400, seed=0))
    assert timed.stop_reason == "time_limit" and 0 < timed.new_tokens < 400
    assert any(ENV_MAX_GENERATION_S in note for note in timed.notes)
