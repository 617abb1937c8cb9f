"""The main job on an embedded default: SimCLR on the 8x8 digits scikit-learn ships.

No download: pretrain SimCLR on the training split of the 1,797 handwritten
digits bundled with scikit-learn, for two seeds; compare kNN and linear-probe
accuracy of the pretrained encoder with the same encoder at random init on
the held-out split; export the encoder, reload the bundle, fine-tune it with
a classifier head next to the same network trained from scratch; write a
report (markdown + PNG plots + JSON) into the output folder.
"""

import json
import os
import time

import keras
import numpy as np

from keras_ssl import augment, backbones, evaluation, methods
from keras_ssl.bundle import export, load_bundle

# Why these values: a 3-stage ConvNet is ample for 8x8 digits and trains at
# hundreds of images/s on 2 CPU cores; crops down to 30% of the area and mild
# brightness/contrast jitter are SimCLR's recipe minus flips and colour (digits
# are grayscale and flipping changes their identity); T=0.5 is SimCLR's CIFAR value.
FILTERS = (16, 32, 64)
CROP_SCALE = (0.3, 1.0)
TEMPERATURE = 0.5
BATCH_SIZE = 256
KNN_K = 20


def load_digits_split(seed=0, test_fraction=0.3):
    """The scikit-learn digits as float images in [0, 1], (N, 8, 8, 1), split stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]
    return train_test_split(images, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target)


def digits_augmenter(seed):
    view = augment.ImageAugmenter(
        crop_scale=CROP_SCALE, flip=False, jitter_strength=0.4, grayscale_probability=0.0, seed=seed, name="digits_view"
    )
    return augment.MultiViewAugmenter([view, view], name="digits_augmenter")


def new_encoder():
    return backbones.ConvNet(filters=FILTERS, input_shape=(8, 8, 1), name="digits_convnet")


def _scores(encoder, split):
    x_train, x_test, y_train, y_test = split
    return {
        "knn": evaluation.knn_accuracy(encoder, x_train, y_train, x_test, y_test, k=KNN_K),
        "linear": evaluation.linear_probe(encoder, x_train, y_train, x_test, y_test),
    }


class _EpochProgress(keras.callbacks.Callback):
    def __init__(self, progress, task):
        super().__init__()
        self.progress, self.task = progress, task

    def on_epoch_end(self, epoch, logs=None):
        self.progress.update(self.task, advance=1, loss=f"{(logs or {}).get('loss', float('nan')):.3f}")


def _classifier(encoder):
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(10, activation="softmax", name="classifier")(encoder(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def run(output="quickstart_report", epochs=80, seeds=(0, 1), fine_tune_epochs=30, console=None):
    """Runs the quickstart; returns the results dict also written to results.json."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console()
    os.makedirs(output, exist_ok=True)
    started = time.perf_counter()
    split = load_digits_split()
    x_train, x_test, y_train, y_test = split
    console.print(
        f"[bold]keras_ssl quickstart[/bold]: SimCLR on scikit-learn digits "
        f"({len(x_train)} train / {len(x_test)} held-out images, backend {keras.backend.backend()})"
    )
    results = {
        "settings": dict(
            epochs=epochs,
            seeds=list(seeds),
            filters=FILTERS,
            crop_scale=CROP_SCALE,
            temperature=TEMPERATURE,
            batch_size=BATCH_SIZE,
            knn_k=KNN_K,
            fine_tune_epochs=fine_tune_epochs,
            backend=keras.backend.backend(),
        ),
        "seeds": {},
    }
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    encoders = {}
    with Progress(*columns, console=console) as progress:
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            encoder = new_encoder()
            random_scores = _scores(encoder, split)
            method = methods.SimCLR(
                encoder, augmenter=digits_augmenter(seed), projection_dim=64, temperature=TEMPERATURE
            )
            method.compile(learning_rate=3e-3)
            task = progress.add_task(f"pretrain seed {seed}", total=epochs, loss="")
            t0 = time.perf_counter()
            history = method.fit(
                x_train, batch_size=BATCH_SIZE, epochs=epochs, verbose=0, callbacks=[_EpochProgress(progress, task)]
            )
            results["seeds"][seed] = {
                "random_init": random_scores,
                "pretrained": _scores(encoder, split),
                "pretrain_seconds": time.perf_counter() - t0,
                "loss": [float(v) for v in history.history["loss"]],
            }
            encoders[seed] = encoder

        task = progress.add_task("export, reload, fine-tune", total=2, loss="")
        bundle = export(
            encoders[seeds[0]],
            os.path.join(output, "encoder_bundle"),
            overwrite=True,
            metadata={"trained_on": "scikit-learn digits (train split)", "method": "SimCLR"},
        )
        reloaded = load_bundle(bundle)
        same = np.allclose(
            reloaded.predict(x_test[:32], verbose=0), encoders[seeds[0]].predict(x_test[:32], verbose=0), atol=1e-5
        )
        fine_tuned = _classifier(reloaded)
        fine_tuned.fit(x_train, y_train, batch_size=64, epochs=fine_tune_epochs, verbose=0)
        progress.update(task, advance=1)
        keras.utils.set_random_seed(seeds[0])
        scratch = _classifier(new_encoder())
        scratch.fit(x_train, y_train, batch_size=64, epochs=fine_tune_epochs, verbose=0)
        progress.update(task, advance=1)
    results["fine_tune"] = {
        "reloaded_bundle_matches": bool(same),
        "pretrained_then_fine_tuned": float(fine_tuned.evaluate(x_test, y_test, verbose=0)[1]),
        "from_scratch": float(scratch.evaluate(x_test, y_test, verbose=0)[1]),
        "bundle": os.path.relpath(bundle, output),
    }
    results["margins"] = _margins(results["seeds"])
    results["total_seconds"] = time.perf_counter() - started
    _plots(results, encoders[seeds[0]], split, output)
    _write_report(results, output)
    with open(os.path.join(output, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    _print_table(results, console)
    console.print(f"Report: {os.path.join(output, 'report.md')}  ({results['total_seconds']:.0f} s)")
    return results


def _margins(per_seed):
    """Mean gain of pretraining per metric, and the spread between seeds of each arm."""
    out = {}
    for metric in ("knn", "linear"):
        pre = [s["pretrained"][metric] for s in per_seed.values()]
        rnd = [s["random_init"][metric] for s in per_seed.values()]
        out[metric] = {
            "gain": float(np.mean(pre) - np.mean(rnd)),
            "seed_spread": float(max(np.ptp(pre), np.ptp(rnd))),
        }
        out[metric]["gain_exceeds_spread"] = out[metric]["gain"] > out[metric]["seed_spread"]
    return out


def _rows(results):
    for seed, s in results["seeds"].items():
        for arm in ("random_init", "pretrained"):
            yield seed, arm, s[arm]["knn"], s[arm]["linear"]


def _print_table(results, console):
    from rich.table import Table

    table = Table(title="Held-out accuracy")
    for column in ("seed", "encoder", f"kNN (k={KNN_K})", "linear probe"):
        table.add_column(column)
    for seed, arm, knn, linear in _rows(results):
        table.add_row(str(seed), arm.replace("_", " "), f"{knn:.3f}", f"{linear:.3f}")
    console.print(table)
    ft = results["fine_tune"]
    console.print(
        f"fine-tuned from the reloaded bundle: {ft['pretrained_then_fine_tuned']:.3f}   "
        f"same network from scratch: {ft['from_scratch']:.3f}"
    )


def _plots(results, encoder, split, output):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    x_train, x_test, y_train, y_test = split
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for seed, s in results["seeds"].items():
        ax.plot(range(1, len(s["loss"]) + 1), s["loss"], label=f"seed {seed}")
    ax.set(xlabel="epoch", ylabel="NT-Xent loss", title="SimCLR pretraining loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(output, "loss.png"), dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    keras.utils.set_random_seed(0)
    for ax, (title, model) in zip(axes, (("random init", new_encoder()), ("SimCLR pretrained", encoder))):
        features = evaluation.extract_features(model, x_test)
        points = TSNE(init="pca", perplexity=30, random_state=0).fit_transform(features)
        scatter = ax.scatter(points[:, 0], points[:, 1], c=y_test, cmap="tab10", s=6)
        ax.set(title=title, xticks=[], yticks=[])
    fig.suptitle("t-SNE of the held-out digits' encoder features")
    fig.colorbar(scatter, ax=axes, ticks=range(10), label="digit")
    fig.savefig(os.path.join(output, "embeddings.png"), dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    metrics = ("knn", "linear")
    width = 0.35
    for i, arm in enumerate(("random_init", "pretrained")):
        means = [np.mean([s[arm][m] for s in results["seeds"].values()]) for m in metrics]
        lows = [means[j] - min(s[arm][m] for s in results["seeds"].values()) for j, m in enumerate(metrics)]
        highs = [max(s[arm][m] for s in results["seeds"].values()) - means[j] for j, m in enumerate(metrics)]
        bars = ax.bar(
            np.arange(2) + i * width, means, width, yerr=[lows, highs], capsize=4, label=arm.replace("_", " ")
        )
        ax.bar_label(bars, fmt="%.3f", padding=3, fontsize=8)
    ax.set_xticks(np.arange(2) + width / 2, [f"kNN (k={KNN_K})", "linear probe"])
    ax.set(ylim=(0.5, 1.05), ylabel="held-out accuracy", title="Pretrained vs random init (bars: seed range)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(output, "accuracy.png"), dpi=120)
    plt.close(fig)


def _write_report(results, output):
    s, ft, m = results["settings"], results["fine_tune"], results["margins"]
    lines = [
        "# keras_ssl quickstart report",
        "",
        f"SimCLR pretraining of a ConvNet{tuple(s['filters'])} on the scikit-learn digits (8x8 grayscale), "
        f"{s['epochs']} epochs, batch {s['batch_size']}, temperature {s['temperature']}, backend `{s['backend']}`, "
        f"seeds {s['seeds']}. Accuracy is measured on the held-out 30% split.",
        "",
        f"| seed | encoder | kNN (k={s['knn_k']}) | linear probe |",
        "| --- | --- | --- | --- |",
        *[
            f"| {seed} | {arm.replace('_', ' ')} | {knn:.3f} | {linear:.3f} |"
            for seed, arm, knn, linear in _rows(results)
        ],
        "",
        "| metric | mean gain of pretraining | largest spread between seeds | gain > spread |",
        "| --- | --- | --- | --- |",
        *[
            f"| {k} | {v['gain']:+.3f} | {v['seed_spread']:.3f} | {'yes' if v['gain_exceeds_spread'] else 'no'} |"
            for k, v in m.items()
        ],
        "",
        "![accuracy](accuracy.png)",
        "",
        "## Export, reload, fine-tune",
        "",
        f"The seed-{s['seeds'][0]} encoder was exported to `{ft['bundle']}` (TensorFlow SavedModel + Keras config and "
        f"weights), reloaded with `keras_ssl.load` (outputs identical: {ft['reloaded_bundle_matches']}) and fine-tuned "
        f"with a softmax head for {s['fine_tune_epochs']} epochs (AdamW): held-out accuracy "
        f"**{ft['pretrained_then_fine_tuned']:.3f}**, against **{ft['from_scratch']:.3f}** for the same network "
        "trained from scratch with the same budget.",
        "",
        "## Plots",
        "",
        "![loss](loss.png)",
        "",
        "![embeddings](embeddings.png)",
        "",
        f"Total time: {results['total_seconds']:.0f} s.",
    ]
    with open(os.path.join(output, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
