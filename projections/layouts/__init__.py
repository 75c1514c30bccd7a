"""Where each read store keeps things: the one place projections, readers and operations learn names from."""
