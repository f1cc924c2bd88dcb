"""``plot_history(mod.history)``: per-epoch train/validation curves as an SVG.

matplotlib is an optional extra (``pip install symgraph-compiler[plot]``) so that the core
package stays light; it is imported only here, with the Agg backend (no display needed).
"""

from __future__ import annotations

PLOT_HINT = ("plot_history needs matplotlib: pip install symgraph-compiler[plot] "
             "(or pip install matplotlib)")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(PLOT_HINT) from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def _series(history, split, metric):
    """(epochs, values) of one split, skipping epochs that did not record the metric."""
    epochs, values = [], []
    for i, record in enumerate(history):
        value = (record.get(split) or {}).get(metric)
        if value is not None:
            epochs.append(record.get("epoch", i))
            values.append(value)
    return epochs, values


def plot_history(history, metric="accuracy", fname=None):
    """Draw ``metric`` per epoch for 'train' and 'validation'; save to ``fname`` if given
    (format from its extension, SVG by default) and return the matplotlib Figure."""
    plt = _pyplot()
    history = list(history)
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = 0
    for split, style in (("train", "o-"), ("validation", "s--")):
        epochs, values = _series(history, split, metric)
        if values:
            ax.plot(epochs, values, style, label=f"{split}-{metric}")
            drawn += 1
    if not drawn:
        plt.close(fig)
        raise ValueError(f"history has no '{metric}' values under 'train' or 'validation'")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if fname is not None:
        fname = str(fname)
        fig.savefig(fname, format=None if "." in fname.rsplit("/", 1)[-1] else "svg")
        plt.close(fig)
    return fig
