"""MaskedLM on WikiText-2, then SST-2 fine-tuning: pretrained vs from scratch.

    python bench/text_pretrain.py --work-dir /tmp/mlm --heldout-every 20   # about 95 minutes on 2 CPU cores
        -> bench/results/text_wikitext2_sst2_<backend>.json, docs/images/sst2_label_budgets_<backend>.png

On a GPU (KERAS_BACKEND=jax), the longer recipe of docs/benchmarks.md (about 10 minutes on an H100):
    python bench/text_pretrain.py --epochs 200 --max-minutes 4 --heldout-every 20 --vocabulary-size 4000 \
        --tokenizer-text pretraining --adapt-rows phrases --adapt-epochs 10 \
        --finetune-learning-rates 3e-4,1e-3,3e-3 \
        --pad-multiple 64 --arms pretrained_masked_lm,from_scratch,masked_lm_adapted_to_sst2_text \
        --output ... --plot ...

1. A WordPiece vocabulary (8,000) is trained on the WikiText-2 *test* split,
   the pretraining text, and on SST-2's training sentences without labels
   (--tokenizer-text; `pretraining`: WikiText-2 alone). The *validation*
   split is held out.
2. A BERT-tiny-shaped encoder (128 dims, 2 pre-LN blocks, 64 tokens; --size)
   pretrains with MaskedLM for the planned epochs (--max-minutes caps it);
   --heldout-every N scores the validation split every N epochs.
   With --work-dir the encoders, tokenizer and figures are kept and reused.
3. Held-out masked-token accuracy and perplexity on the validation split, on
   the same masked positions as the unigram-frequency baseline (always predict
   the most frequent training token; its perplexity uses add-one smoothed
   training frequencies).
4. SST-2's training text, labels unused (--adapt-rows; default: its 6,885
   sentences, `data.drop_subphrases`): a copy of the encoder trains
   --adapt-epochs more MaskedLM epochs on it (domain-adaptive pretraining),
   and the same architecture from random init trains as many on it alone.
5. Frozen probes: logistic regression on mean-pooled states after each block.
6. SST-2, for each label budget: the pretrained encoder, the adapted one, the
   one pretrained on SST-2 text alone, the same architecture from its random
   init (and, with --arms, a Word2Vec embedding trained on the same WikiText-2
   text) each get a classifier and the same number of fine-tuning steps at
   each learning rate of a sweep; each arm's rate is picked on held-out SST-2
   training phrases, and its dev accuracy is reported. Each budget is
   repeated at the picked rate with --repeat-seeds; the mean and spread over
   seeds, and Welch's t-test of each arm against from scratch, are reported.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from device import describe as describe_device  # noqa: E402  (bench/device.py)

DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")


TOKENIZER_TEXTS = {
    "pretraining": "wiki.test.tokens",
    "pretraining+sst2": "wiki.test.tokens + the SST-2 training sentences (labels unused)",
}


def sst2_training_sentences(args):
    """SST-2's training sentences without labels: the phrases of train.tsv that are no other phrase's part."""
    from keras_ssl import data

    phrases, _ = data.load_sst2(os.path.join(args.data, "sst2", "train.tsv"))
    return data.drop_subphrases(phrases)


def pretrain(args):
    """Tokenizer + MaskedLM on the WikiText-2 test split; held-out scores against the unigram baseline."""
    import keras

    from keras_ssl import backbones, data, methods
    from keras_ssl.augment.text import mask_tokens

    keras.utils.set_random_seed(args.seed)
    train_text = data.load_wikitext(os.path.join(args.data, "wikitext-2", "wiki.test.tokens"))
    heldout_text = data.load_wikitext(os.path.join(args.data, "wikitext-2", "wiki.valid.tokens"))
    tokenizer_text = train_text + (sst2_training_sentences(args) if args.tokenizer_text == "pretraining+sst2" else [])
    tokenizer = data.WordPieceTokenizer.train(tokenizer_text, vocabulary_size=args.vocabulary_size)
    train_ids, heldout_ids = tokenizer.pack(train_text, args.max_length), tokenizer.pack(heldout_text, args.max_length)
    vocabulary_size = tokenizer.vocabulary_size
    print(
        f"vocabulary {vocabulary_size}, {train_ids.shape[0]} training rows, {heldout_ids.shape[0]} held-out rows",
        flush=True,
    )

    def make_encoder():
        return backbones.TransformerEncoder(
            vocabulary_size, args.size, max_length=max(args.max_length, 64), norm_first=True
        )

    encoder = make_encoder()
    mlm = methods.MaskedLM(encoder, seed=args.seed)
    steps_per_epoch = len(train_ids) // args.batch_size
    mlm.compile(learning_rate=args.learning_rate, weight_decay=0.01)

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.steps, self.curve = time.perf_counter(), 0, []

        def on_epoch_end(self, epoch, logs=None):
            if args.heldout_every and (epoch + 1) % args.heldout_every == 0:
                scores = mlm.evaluate_masked(heldout_ids, seed=1)
                heldout_curve.append({"epoch": epoch + 1, "steps": self.steps, **scores})
                print(f"  epoch {epoch + 1}: held-out {scores}", flush=True)

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.steps % 50 == 0:
                self.curve.append((self.steps, float(logs["loss"]), float(logs["accuracy"])))
                print(
                    f"  step {self.steps} loss {logs['loss']:.3f} acc {logs['accuracy']:.3f} "
                    f"{time.perf_counter() - self.start:.0f} s",
                    flush=True,
                )
            if time.perf_counter() - self.start > args.max_minutes * 60:
                self.model.stop_training = True

    before = mlm.evaluate_masked(heldout_ids, seed=1)
    heldout_curve = []
    budget = Budget()
    t0 = time.perf_counter()
    mlm.fit(train_ids, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[budget])
    train_seconds = time.perf_counter() - t0
    after = mlm.evaluate_masked(heldout_ids, seed=1)
    print("held-out before", before, "\nheld-out after ", after, flush=True)

    # Unigram baseline on the very same masked positions (same seed, same batches).
    counts = np.bincount(train_ids[train_ids >= 5], minlength=vocabulary_size).astype("float64")
    counts[:5] = 0
    smoothed = (counts + 1) / (counts + 1)[5:].sum()
    mode = int(np.argmax(counts))
    generator = keras.random.SeedGenerator(1)
    hits = nll = count = 0.0
    for start in range(0, len(heldout_ids), 128):
        batch = keras.ops.convert_to_tensor(heldout_ids[start : start + 128])
        _, _, targets, weights = mask_tokens(
            batch, mlm.mask_rate, vocabulary_size, mlm.mask_id, mlm.first_word_id, generator
        )
        targets, weights = keras.ops.convert_to_numpy(targets), keras.ops.convert_to_numpy(weights)
        hits += float(((targets == mode) * weights).sum())
        nll += float((-np.log(smoothed[targets]) * weights).sum())
        count += float(weights.sum())
    unigram = {
        "accuracy": hits / count,
        "perplexity": math.exp(nll / count),
        "predictions": int(count),
        "most_frequent_token": tokenizer.decode([mode]) or str(mode),
    }
    print("unigram", unigram, flush=True)

    dim, depth, heads = backbones.TEXT_SIZES[args.size]
    record = {
        "device": describe_device(keras.backend.backend()),
        "backend": keras.backend.backend(),
        "tokenizer": {
            "kind": "WordPiece (HF tokenizers)",
            "vocabulary_size": vocabulary_size,
            "trained_on": TOKENIZER_TEXTS[args.tokenizer_text],
        },
        "encoder": f"TransformerEncoder {args.size} ({dim} dims, {depth} pre-LN blocks, {heads} heads, "
        f"{max(args.max_length, 64)} tokens)",
        "pretraining": {
            "text": f"WikiText-2 test split, packed into {args.max_length}-token rows",
            "rows": int(len(train_ids)),
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "planned_epochs": args.epochs,
            "steps_trained": budget.steps,
            "epochs_trained": budget.steps / steps_per_epoch,
            "train_seconds": train_seconds,
            "curve_step_loss_accuracy": budget.curve,
        },
        "heldout": {
            "text": "WikiText-2 validation split",
            "random_init": before,
            "pretrained": after,
            "unigram_baseline": unigram,
            "curve": heldout_curve,
        },
    }
    return record, mlm.encoder, tokenizer


# Arms that pretrain on SST-2's training text (labels unused): arm -> (--work-dir folder, from random init?).
SST2_TEXT_ARMS = {
    "masked_lm_adapted_to_sst2_text": ("adapted", False),
    "masked_lm_on_sst2_text_only": ("sst2_text_only", True),
}

ADAPT_ROWS = {
    "sentences": "the SST-2 training sentences (phrases that are no other phrase's part), one per padded row",
    "phrases": "every SST-2 training phrase, one per padded row",
    "packed": "every SST-2 training phrase, packed into full rows",
}


def adapt_to_sst2_text(args, sentences, encoder, tokenizer, from_scratch=False):
    """More MaskedLM, on the SST-2 training text without its labels (domain-adaptive pretraining).

    Starts from a copy of the WikiText-2 encoder (`from_scratch`: from the
    same architecture's random init, i.e. pretraining on SST-2 text alone);
    the MLM output transform starts afresh (only the encoder is kept), the
    output matrix is the encoder's token embedding. `--adapt-rows sentences`
    gives each training sentence its own padded row (`phrases`: every
    labelled phrase, so each sentence's words recur ~5 times; `packed`:
    every phrase, packed into full rows).
    """
    import keras

    from keras_ssl import data, methods

    if args.adapt_rows == "sentences":
        ids = tokenizer.encode(data.drop_subphrases(sentences), max_length=args.max_length)
    elif args.adapt_rows == "phrases":
        ids = tokenizer.encode(sentences, max_length=args.max_length)
    else:
        ids = tokenizer.pack(sentences, args.max_length)
    keras.utils.set_random_seed(args.seed)
    copy = keras.models.clone_model(encoder)
    if not from_scratch:
        copy.set_weights(encoder.get_weights())
    mlm = methods.MaskedLM(copy, seed=args.seed)
    mlm.compile(learning_rate=args.adapt_learning_rate, weight_decay=0.01)
    print(f"adapting on {len(ids)} rows of SST-2 training text (labels unused)", flush=True)
    t = time.perf_counter()
    history = mlm.fit(ids, batch_size=args.batch_size, epochs=args.adapt_epochs, verbose=2)
    record = {
        "text": f"{ADAPT_ROWS[args.adapt_rows]} ({args.max_length} tokens), labels unused",
        "start": "random init" if from_scratch else "the WikiText-2 MaskedLM encoder",
        "rows": int(len(ids)),
        "epochs": args.adapt_epochs,
        "learning_rate": args.adapt_learning_rate,
        "batch_size": args.batch_size,
        "train_seconds": time.perf_counter() - t,
        "final_loss": float(history.history["loss"][-1]),
        "final_accuracy": float(history.history["accuracy"][-1]),
    }
    return record, mlm.encoder


def save_pretrained(work_dir, record, encoder, tokenizer):
    os.makedirs(work_dir, exist_ok=True)
    encoder.save(os.path.join(work_dir, "encoder.keras"))
    tokenizer.save(work_dir)
    with open(os.path.join(work_dir, "pretraining.json"), "w") as f:
        json.dump(record, f, indent=2)


def load_pretrained(work_dir):
    """(record, encoder, tokenizer) saved by an earlier run, or (None, None, None)."""
    import keras

    from keras_ssl import data

    if not os.path.isfile(os.path.join(work_dir, "pretraining.json")):
        return None, None, None
    with open(os.path.join(work_dir, "pretraining.json")) as f:
        record = json.load(f)
    encoder = keras.saving.load_model(os.path.join(work_dir, "encoder.keras"))
    return record, encoder, data.WordPieceTokenizer.load(work_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-minutes", type=float, default=30.0, help="pretraining wall time")
    parser.add_argument("--epochs", type=int, default=60, help="planned pretraining epochs (the schedule's length)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per pretraining row")
    parser.add_argument("--size", choices=("tiny", "mini"), default="tiny", help="TransformerEncoder size")
    parser.add_argument(
        "--heldout-every", type=int, default=0, help="score the validation split every N pretraining epochs"
    )
    parser.add_argument("--vocabulary-size", type=int, default=8000, help="WordPiece vocabulary to train")
    parser.add_argument(
        "--tokenizer-text",
        choices=tuple(TOKENIZER_TEXTS),
        default="pretraining+sst2",
        help="what the WordPiece vocabulary is trained on",
    )
    parser.add_argument("--output", default=None, help="default: bench/results/text_wikitext2_sst2_<backend>.json")
    parser.add_argument(
        "--label-budgets",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[300, 1000, 4000, 20000],
        help="SST-2 training phrases per comparison (comma-separated)",
    )
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--min-finetune-steps", type=int, default=300, help="small label budgets get more epochs")
    parser.add_argument(
        "--finetune-learning-rates",
        type=lambda s: [float(v) for v in s.split(",")],
        default=[1e-3, 3e-3],
        help="peak learning rates swept for every arm",
    )
    parser.add_argument(
        "--selection-examples",
        type=int,
        default=2000,
        help="held-out SST-2 training phrases that pick each arm's learning rate",
    )
    parser.add_argument(
        "--pooling",
        choices=("cls", "mean"),
        default="mean",
        help="how the SST-2 classifier pools the Transformer's tokens (MLM alone never trains [CLS])",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work-dir",
        default=None,
        help="keep the pretrained encoder, tokenizer and pretraining figures here and reuse them on the next run",
    )
    parser.add_argument(
        "--pretrain-only", action="store_true", help="stop after pretraining and write its figures to --output"
    )
    parser.add_argument(
        "--adapt-epochs",
        type=int,
        default=50,
        help="MaskedLM epochs on SST-2 training text (no labels) for the adapted and SST-2-text-only arms",
    )
    parser.add_argument("--adapt-learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--adapt-rows",
        choices=tuple(ADAPT_ROWS),
        default="sentences",
        help="SST-2 text for the adaptation arms: " + "; ".join(f"{k}: {v}" for k, v in ADAPT_ROWS.items()),
    )
    parser.add_argument(
        "--repeat-seeds",
        type=lambda s: [int(v) for v in s.split(",") if v],
        default=[1, 2, 3, 4, 5, 6, 7],
        help="extra fine-tuning seeds, run at each arm's picked rate for every budget",
    )
    parser.add_argument(
        "--pad-multiple",
        type=int,
        default=8,
        help="fine-tuning batches are cut to their longest phrase, rounded up to this (64: one shape)",
    )
    parser.add_argument(
        "--arms",
        type=lambda s: s.split(","),
        default=["pretrained_masked_lm", "from_scratch", *SST2_TEXT_ARMS],
        help="which SST-2 classifiers to train (comma-separated; also word2vec_mean_pooling)",
    )
    parser.add_argument("--plot", default=None, help="default: docs/images/sst2_label_budgets_<backend>.png")
    parser.add_argument("--data", default=DATA)
    args = parser.parse_args()

    import keras

    backend = keras.backend.backend()
    record, encoder, tokenizer = load_pretrained(args.work_dir) if args.work_dir else (None, None, None)
    if record is None:
        record, encoder, tokenizer = pretrain(args)
        if args.work_dir:
            save_pretrained(args.work_dir, record, encoder, tokenizer)
    else:
        print(f"reusing the pretrained encoder in {args.work_dir}", flush=True)
    output = args.output or os.path.join(HERE, "results", f"text_wikitext2_sst2_{backend}.json")
    record["command"] = " ".join(["python", os.path.relpath(__file__, ROOT)] + sys.argv[1:])
    if args.pretrain_only:
        with open(output, "w") as f:
            json.dump(record, f, indent=2)
        print("->", output)
        return
    sst2 = load_sst2_splits(args, tokenizer)
    adapted = {}  # arm -> encoder pretrained (further) on SST-2's training text, labels unused
    for arm, (folder, from_scratch) in SST2_TEXT_ARMS.items():
        if arm not in args.arms or not args.adapt_epochs:
            continue
        cached = os.path.join(args.work_dir, folder) if args.work_dir else None
        if cached and os.path.isfile(os.path.join(cached, "pretraining.json")):
            adaptation, adapted[arm], _ = load_pretrained(cached)
        else:
            adaptation, adapted[arm] = adapt_to_sst2_text(args, sst2.sentences, encoder, tokenizer, from_scratch)
            if cached:
                save_pretrained(cached, adaptation, adapted[arm], tokenizer)
        record.setdefault("sst2_text_pretraining", {})[arm] = adaptation
    record["sst2_frozen_probe"] = frozen_probes(args, sst2, encoder, adapted)
    record["token_embedding_neighbours"] = embedding_neighbours({"pretrained_masked_lm": encoder, **adapted}, tokenizer)

    def save(sst2_result):  # after every label budget, so a run cut short keeps what it measured
        record["sst2"] = sst2_result
        with open(output, "w") as f:
            json.dump(record, f, indent=2)

    finetune_sst2(args, sst2, encoder, tokenizer, adapted, on_budget=save)
    print("->", output)
    plot_budgets(record["sst2"], args.plot or os.path.join(ROOT, "docs", "images", f"sst2_label_budgets_{backend}.png"))


def plot_budgets(sst2, path):
    """Dev accuracy against the number of labelled SST-2 phrases, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sst2["label_budgets"]
    examples = [entry["train_examples"] for entry in budgets]
    figure, axis = plt.subplots(figsize=(6, 3.9))
    for arm, label in (
        ("pretrained_masked_lm", "MaskedLM on WikiText-2, fine-tuned"),
        ("from_scratch", "same Transformer from scratch"),
        ("masked_lm_adapted_to_sst2_text", "same, then MaskedLM on SST-2 text (no labels)"),
        ("masked_lm_on_sst2_text_only", "MaskedLM on SST-2 text only (no labels), fine-tuned"),
        ("word2vec_mean_pooling", "Word2Vec (gensim) + mean pooling"),
    ):
        if arm not in budgets[0]:
            continue
        means = [100 * entry[arm]["dev_accuracy_mean"] for entry in budgets]
        spreads = [100 * entry[arm]["dev_accuracy_std"] for entry in budgets]
        axis.errorbar(examples, means, yerr=spreads, marker="o", capsize=3, label=label)
    axis.set_xscale("log")
    axis.set_xticks(examples, [f"{n:,}" for n in examples])
    axis.set_xlabel("labelled SST-2 training phrases")
    seeds = len(budgets[0]["seeds"])
    if seeds > 1:
        axis.set_title(f"mean \u00b1 std over {seeds} fine-tuning seeds", fontsize=9)
    axis.set_ylabel("SST-2 dev accuracy (%)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    print("->", path)


def length_sorted_batches(ids, labels, batch_size, rng, pad_multiple, pool_batches=50):
    """Shuffled batches cut to their longest sequence (rounded up to `pad_multiple`, so few shapes compile).

    Sequences are sorted by length inside pools of `pool_batches` batches, so
    a batch of short SST-2 phrases does not pay for 64 columns of padding.
    """
    order = rng.permutation(len(ids))
    lengths = (ids != 0).sum(axis=1)
    batches = []
    for start in range(0, len(order), batch_size * pool_batches):
        pool = order[start : start + batch_size * pool_batches]
        pool = pool[np.argsort(lengths[pool], kind="stable")]
        batches += [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
    for index in rng.permutation(len(batches)):
        batch = batches[index]
        width = min(ids.shape[1], -(-int(lengths[batch].max()) // pad_multiple) * pad_multiple)
        yield ids[batch, :width], labels[batch]


def load_sst2_splits(args, tokenizer):
    """SST-2 read and encoded once: the held-out phrases that pick learning rates, the pool budgets come from, dev."""
    import types

    from keras_ssl import data

    sentences, labels = data.load_sst2(os.path.join(args.data, "sst2", "train.tsv"))
    dev_sentences, dev_labels = data.load_sst2(os.path.join(args.data, "sst2", "dev.tsv"))
    order = np.random.default_rng(args.seed).permutation(len(sentences))
    return types.SimpleNamespace(
        sentences=sentences,
        labels=np.array(labels),
        ids=tokenizer.encode(sentences, max_length=64),
        dev_sentences=dev_sentences,
        dev_labels=np.array(dev_labels),
        dev_ids=tokenizer.encode(dev_sentences, max_length=64),
        select=order[: args.selection_examples],
        pool=order[args.selection_examples :],
    )


def frozen_probes(args, sst2, encoder, adapted, examples=8000):
    """Logistic regression on frozen, mean-pooled states after each stage of each encoder.

    Shows what the encoders carry about sentiment before any fine-tuning, and
    how large the residual stream has grown (`mean_norm`).
    """
    import keras
    from sklearn.linear_model import LogisticRegression

    train = sst2.pool[:examples]
    x, y, x_dev, y_dev = sst2.ids[train], sst2.labels[train], sst2.dev_ids, sst2.dev_labels
    keras.utils.set_random_seed(args.seed)
    encoders = {"random_init": keras.models.clone_model(encoder), "pretrained_masked_lm": encoder, **adapted}
    stages = ["embeddings_dropout"] + [layer.name for layer in encoder.layers if layer.name.startswith("block")]
    stages += [name for name in ("final_norm",) if name in {layer.name for layer in encoder.layers}]

    def pooled(model, ids):
        outputs = keras.Model(model.input, [model.get_layer(name).output for name in stages]).predict(
            ids, batch_size=512, verbose=0
        )
        real = (ids != 0)[..., None].astype("float32")
        return [(out * real).sum(axis=1) / real.sum(axis=1) for out in outputs]

    result = {"train_examples": int(len(x)), "classifier": "scikit-learn LogisticRegression(max_iter=2000)"}
    for name, model in encoders.items():
        result[name] = {}
        for stage, features, dev_features in zip(stages, pooled(model, x), pooled(model, x_dev)):
            probe = LogisticRegression(max_iter=2000).fit(features, y)
            result[name][stage] = {
                "dev_accuracy": float(probe.score(dev_features, y_dev)),
                "mean_norm": float(np.linalg.norm(features, axis=1).mean()),
            }
        print("frozen probe", name, {k: round(v["dev_accuracy"], 4) for k, v in result[name].items()}, flush=True)
    return result


def finetune_sst2(args, sst2, encoder, tokenizer, adapted, on_budget=None):
    """SST-2: pretrained encoder vs the same architecture from scratch (and Word2Vec), equal budgets.

    For each label budget, every arm trains for the same number of steps at
    each learning rate of the sweep (seed --seed); the rate is picked on
    held-out SST-2 training phrases (never on dev). The arm then trains again
    at that rate with each of --repeat-seeds (initialisation of the new
    layers, dropout and batch order; the same phrases), and the mean and
    standard deviation of dev accuracy over the seeds are reported.
    `on_budget(result)` receives the result so far after each budget.
    """
    import keras

    from keras_ssl import data, evaluation, methods

    labels, dev_labels, select, pool = sst2.labels, sst2.dev_labels, sst2.select, sst2.pool
    x_all, x_dev = sst2.ids, sst2.dev_ids
    pretrained_weights = encoder.get_weights()

    def transformer(weights):
        model = keras.models.clone_model(encoder)
        if weights is not None:
            model.set_weights(weights)
        return model

    arms = {
        "pretrained_masked_lm": (lambda: transformer(pretrained_weights), args.pooling, x_all, x_dev),
        "from_scratch": (lambda: transformer(None), args.pooling, x_all, x_dev),
    }
    if "word2vec_mean_pooling" in args.arms:
        word2vec = methods.Word2Vec(vector_size=128, min_count=2, epochs=5, seed=args.seed)
        train_text = data.load_wikitext(os.path.join(args.data, "wikitext-2", "wiki.test.tokens"))
        word2vec.fit([tokenizer.tokenize(line) for line in train_text], progress=False)
        # Word2Vec ids follow its own vocabulary: map SST-2 through it.
        w2v_all = word2vec.ids([tokenizer.tokenize(s) for s in sst2.sentences], max_length=64, truncate=True)
        w2v_dev = word2vec.ids([tokenizer.tokenize(s) for s in sst2.dev_sentences], max_length=64, truncate=True)
        arms["word2vec_mean_pooling"] = (lambda: word2vec.as_embedding(trainable=True), "mean", w2v_all, w2v_dev)
    for arm, model in adapted.items():
        weights = model.get_weights()
        arms[arm] = (lambda weights=weights: transformer(weights), args.pooling, x_all, x_dev)
    arms = {arm: arms[arm] for arm in args.arms if arm in arms}

    class FixedBatches(keras.utils.PyDataset):
        """A list of (ids, labels) batches, in order, for `fit`."""

        def __init__(self, batches):
            super().__init__()
            self.batches = batches

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            return self.batches[index]

    def run(make, pooling, x, x_eval, train, learning_rate, steps, seed):
        keras.utils.set_random_seed(seed)
        model = evaluation.text_classifier(make(), 2, pooling=pooling)
        warmup = steps // 10
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, steps - warmup, warmup_target=learning_rate, warmup_steps=warmup
        )
        model.compile(
            keras.optimizers.AdamW(schedule, weight_decay=0.01),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        rng, batches, t = np.random.default_rng(seed), [], time.perf_counter()
        while len(batches) < steps:
            batches += length_sorted_batches(x[train], labels[train], 32, rng, args.pad_multiple)
        batches = batches[:steps]
        if keras.backend.backend() == "jax":
            # JAX's train_on_batch waits for the device and copies the weights back every step; fit does not.
            model.fit(FixedBatches(batches), epochs=1, verbose=0)
        else:  # TensorFlow would fix fit's input shapes from the first batches; these vary in length.
            for xb, yb in batches:
                model.train_on_batch(xb, yb)
        seconds = time.perf_counter() - t

        def accuracy(xs, ys):
            return float(model.evaluate(xs, ys, batch_size=256, verbose=0, return_dict=True)["accuracy"])

        return {
            "selection_accuracy": accuracy(x[select], labels[select]),
            "dev_accuracy": accuracy(x_eval, dev_labels),
            "seconds": round(seconds, 1),
        }

    seeds = [args.seed] + list(args.repeat_seeds)
    budgets = []
    result = {
        "dev_examples": int(len(x_dev)),
        "selection_examples": int(len(select)),
        "selection": "learning rate with the best accuracy on held-out SST-2 training phrases (seed --seed)",
        "batch_size": 32,
        "pad_multiple": args.pad_multiple,
        "optimizer": "AdamW (weight decay 0.01), 10% linear warmup + cosine decay",
        "label_budgets": budgets,
    }
    for examples in args.label_budgets:
        train = pool[:examples]
        steps = max(args.finetune_epochs * -(-examples // 32), args.min_finetune_steps)
        entry = {
            "train_examples": int(examples),
            "steps": steps,
            "epochs": round(steps * 32 / examples, 2),
            "seeds": seeds,
        }
        for arm, (make, pooling, x, x_eval) in arms.items():
            sweep = {}
            for learning_rate in args.finetune_learning_rates:
                sweep[str(learning_rate)] = run(make, pooling, x, x_eval, train, learning_rate, steps, args.seed)
                print(f"  {examples} examples, {arm}, lr {learning_rate}: {sweep[str(learning_rate)]}", flush=True)
            best = max(sweep, key=lambda lr: sweep[lr]["selection_accuracy"])
            accuracies = [sweep[best]["dev_accuracy"]]
            for seed in args.repeat_seeds:
                accuracies.append(run(make, pooling, x, x_eval, train, float(best), steps, seed)["dev_accuracy"])
            entry[arm] = {
                "pooling": pooling,
                "selected_learning_rate": float(best),
                "dev_accuracy": accuracies,
                "dev_accuracy_mean": float(np.mean(accuracies)),
                "dev_accuracy_std": float(np.std(accuracies)),
                "sweep": sweep,
            }
            print(f"  {examples} examples, {arm}: dev {np.round(accuracies, 4).tolist()}", flush=True)
        entry["versus_from_scratch"] = versus_from_scratch(entry)
        budgets.append(entry)
        print(
            "SST-2 dev, mean over seeds", {arm: round(entry[arm]["dev_accuracy_mean"], 4) for arm in arms}, flush=True
        )
        if on_budget:
            on_budget(result)
    return result


NEIGHBOUR_WORDS = ("good", "bad", "great", "worst", "funny", "boring")


def embedding_neighbours(encoders, tokenizer, words=NEIGHBOUR_WORDS, k=5):
    """Each encoder's nearest whole-word tokens (cosine of token embeddings) to a few sentiment words."""
    from keras_ssl import data

    vocabulary = [tokenizer.decode([i]) for i in range(tokenizer.vocabulary_size)]
    words_from = len(data.SPECIAL_TOKENS)  # the special tokens come first
    candidates = np.array([i for i, token in enumerate(vocabulary) if token.isalpha() and i >= words_from])
    result = {}
    for name, encoder in encoders.items():
        matrix = encoder.get_layer("token_embedding").get_weights()[0]
        matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        result[name] = {}
        for word in words:
            index = tokenizer.token_to_id(word)
            if index is None:
                continue
            similarity = matrix[candidates] @ matrix[index]
            nearest = [candidates[i] for i in np.argsort(-similarity) if candidates[i] != index][:k]
            result[name][word] = [vocabulary[i] for i in nearest]
    return result


def versus_from_scratch(entry):
    """Each arm's mean dev accuracy minus the from-scratch arm's, with Welch's t-test over the seeds.

    `p_value` is two-sided: the chance of a gap this large between seed means
    if the two arms were equally good.
    """
    from scipy import stats  # scikit-learn's dependency

    scratch = entry.get("from_scratch")
    if not scratch or len(scratch["dev_accuracy"]) < 2:
        return {}
    comparison = {}
    for arm, value in entry.items():
        if isinstance(value, dict) and "dev_accuracy" in value and arm != "from_scratch":
            test = stats.ttest_ind(value["dev_accuracy"], scratch["dev_accuracy"], equal_var=False)
            comparison[arm] = {
                "mean_gain": value["dev_accuracy_mean"] - scratch["dev_accuracy_mean"],
                "t": float(test.statistic),
                "p_value": float(test.pvalue),
            }
    return comparison


if __name__ == "__main__":
    main()
