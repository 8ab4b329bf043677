"""A blue/green deploy of the prod endpoint under load (benchmarks/bench_swap.py, small): no
request fails and every answer comes from the old or the new model, never a mix; a request sent
once the deploy call returned is answered by the new model."""

from __future__ import annotations

import pytest

from benchmarks.bench_swap import swap_under_load


@pytest.fixture(scope="module")
def swapped(tmp_path_factory):
    return swap_under_load(tmp_path_factory.mktemp("swap"), clients=4, before=1.0, after=1.0, swaps=2)


def test_no_request_fails_while_the_model_is_swapped(swapped):
    assert swapped.answers and [a for a in swapped.answers if a.status != 200] == []


def test_every_answer_comes_from_the_old_or_the_new_model_never_a_mix(swapped):
    assert {a.model for a in swapped.answers} <= {"A", "B"}
    assert all(swapped.summary()["by_model"].values())  # both models answered


def test_requests_sent_after_a_swap_returned_are_answered_by_the_new_model(swapped):
    assert swapped.old_after_swap() == []
