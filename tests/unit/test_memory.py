"""Freed memory goes back after a large drain: once per ``LARGE_DRAIN`` positions passed, not after each drain."""

from __future__ import annotations

from workers import memory


def test_a_trim_is_due_once_enough_was_passed_and_then_not_again():
    while memory.due():  # whatever earlier tests passed
        pass
    memory.passed(memory.LARGE_DRAIN - 1)
    assert not memory.due()
    memory.passed(1)
    assert memory.due()
    assert not memory.due(), "the count starts again after a trim"


def test_the_trim_runs_on_this_c_library():
    assert memory.give_back()  # glibc, as on every machine Prism runs on
