"""Training curves as PNG files (matplotlib's Agg backend: no display needed)."""

import math
import os


def save_loss_curve(history, path, title=None):
    """Writes the per-epoch curves of a training history as a PNG: the loss first, then each logged value.

    Args:
        history: `{name: [one value per epoch]}`, e.g. `keras.callbacks.History.history`
            or a keras-ssl run's history.json; an "epoch" column, when present, gives
            the x axis (1-based epoch numbers), else the epochs are counted from 1.
            Non-finite values (None, NaN) leave gaps.
        path: the PNG file to write (replaced in one rename, so readers never see half a file).
        title: the figure's title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, whatever backend the environment asks for
    import matplotlib.pyplot as plt

    curves = {k: v for k, v in history.items() if k != "epoch" and isinstance(v, (list, tuple))}
    if "loss" not in curves:
        raise ValueError(f"Expected a history with a 'loss' column. Received columns: {sorted(history)}")
    names = ["loss"] + sorted(k for k in curves if k != "loss")
    epochs = list(history.get("epoch") or range(1, len(curves["loss"]) + 1))
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for axis, name in zip(axes[0], names):
        values = [v if isinstance(v, (int, float)) and math.isfinite(v) else math.nan for v in curves[name]]
        axis.plot(epochs[: len(values)], values, marker="o", markersize=3)
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp"
    try:
        figure.savefig(partial, format="png", dpi=100)
        os.replace(partial, path)
    finally:
        plt.close(figure)
        if os.path.exists(partial):
            os.remove(partial)
    return path
