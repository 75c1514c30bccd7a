"""Freed memory goes back after a large drain: once per ``LARGE_DRAIN`` positions passed, not after each drain."""

from __future__ import annotations

from workers import memory


def test_a_trim_is_due_once_enough_was_passed_and_then_not_again():
    passed = memory.Passed()  # not the process's: drains of other tests may be running
    passed.add(memory.LARGE_DRAIN - 1)
    assert not passed.due()
    passed.add(1)
    assert passed.due()
    assert not passed.due(), "the count starts again after a trim"


def test_the_trim_runs_on_this_c_library():
    assert memory.give_back()  # glibc, as on every machine Prism runs on
