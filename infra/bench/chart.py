"""The chart of a bench run: commit-to-visible latency by offered load, per store."""

from __future__ import annotations

from pathlib import Path


def chart(results: dict, path: Path, stores: dict[str, str], goal_ms: float) -> None:
    """``stores``: each projection's label; ``goal_ms``: the p99 goal drawn across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5), dpi=110)
    loads = [r["offered_per_s"] for r in results["visibility"]]
    for name, label in stores.items():
        axis.plot(loads, [r["stores"][name]["p99_ms"] for r in results["visibility"]], marker="o", label=f"{label} p99")
        axis.plot(
            loads,
            [r["stores"][name]["p50_ms"] for r in results["visibility"]],
            linestyle=":",
            color=axis.lines[-1].get_color(),
            label=f"{label} p50",
        )
    axis.axhline(goal_ms, color="grey", linestyle="--", linewidth=1, label=f"goal p99 {goal_ms} ms")
    axis.set_xlabel("offered load (orders/s, open loop)")
    axis.set_ylabel("commit-to-visible latency (ms)")
    axis.set_yscale("log")
    axis.set_title(f"Prism commit-to-visible latency ({results['machine']['cores']} cores, {results['mode']} run)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
