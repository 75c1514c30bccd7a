"""The collector tuning of batch processes: start-up objects frozen, the youngest generation collected rarely."""

from __future__ import annotations

import gc

from infra.processes.gc_tuning import YOUNG_THRESHOLD, tune_for_batches


def test_batch_processes_freeze_start_up_and_collect_young_objects_rarely():
    before = gc.get_threshold()
    try:
        tune_for_batches()
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
