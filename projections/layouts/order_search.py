"""Where the Elasticsearch order search lives: one index per version, and the aliases readers search."""

from __future__ import annotations

from typing import Any

from projections.stores import elasticsearch as driver
from write.partitions import WHOLE, Partition

#: The projection this layout stores (readers name it when they ask it to apply a position now).
PROJECTION = "order_search"


class Names:
    """Index names of one version; readers search the aliases, which one request moves together."""

    def __init__(self, namespace: str, version: int = 1, partition: Partition = WHOLE) -> None:
        self.alias = f"{namespace}-orders"
        self.index = f"{namespace}-orders-v{version}"
        self.dimensions = f"{namespace}-order-names-v{version}"
        self.checkpoints = f"{namespace}-order-checkpoint-v{version}"
        self.checkpoint_alias = f"{namespace}-order-checkpoint"
        self.checkpoint_id = checkpoint_id(partition.suffix)

    def serving(self) -> list[dict[str, Any]]:
        """Alias actions that point both aliases at this version (and away from every other)."""
        pairs = ((self.alias, self.index), (self.checkpoint_alias, self.checkpoints))
        return [{"remove": {"index": f"{alias}-v*", "alias": alias, "must_exist": False}} for alias, _ in pairs] + [
            {"add": {"index": index, "alias": alias}} for alias, index in pairs
        ]


def checkpoint_id(part: str) -> str:
    """A partition's checkpoint document in its version's checkpoint index (``position`` when not split)."""
    return "position" + part


async def read_checkpoint(es, names: Names, served: bool = False, part: str = "") -> int:
    """This version's checkpoint, or with ``served`` the checkpoint of the partition ``part`` names of the version
    readers see."""
    try:
        found = await es.get(
            index=names.checkpoint_alias if served else names.checkpoints,
            id=checkpoint_id(part) if served else names.checkpoint_id,
            realtime=True,
        )
    except driver.Missing:
        return 0
    return int(found["_source"]["position"])
