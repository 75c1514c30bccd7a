"""``prism bench``: Prism measured end to end on the real stores, beside the naive design, in one run."""
