"""MaskedLM on WikiText-2, then SST-2 fine-tuning: pretrained vs from scratch.

    python bench/text_pretrain.py        # ~15 minutes on 2 CPU cores -> bench/results/text_wikitext2_sst2_<backend>.json

1. A WordPiece vocabulary (8,000) is trained on the WikiText-2 *test* split,
   which is also the pretraining text; the *validation* split is held out.
2. A BERT-tiny-shaped encoder (128 dims, 2 pre-LN blocks, 128 tokens) pretrains
   with MaskedLM until the wall-time budget (--max-minutes).
3. Held-out masked-token accuracy and perplexity on the validation split, on
   the same masked positions as the unigram-frequency baseline (always predict
   the most frequent training token; its perplexity uses add-one smoothed
   training frequencies).
4. SST-2: the pretrained encoder and the same architecture from random init
   each get a classifier ([CLS] pooling) and the same fine-tuning budget on the
   training set; accuracy on the dev split. A Word2Vec (gensim) embedding +
   mean pooling, trained on the same WikiText-2 text, gets the same budget.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-minutes", type=float, default=10.0, help="pretraining wall time")
    parser.add_argument("--epochs", type=int, default=40, help="planned pretraining epochs (the schedule's length)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=128, help="tokens per pretraining row")
    parser.add_argument("--vocabulary-size", type=int, default=8000, help="WordPiece vocabulary to train")
    parser.add_argument("--output", default=None, help="default: bench/results/text_wikitext2_sst2_<backend>.json")
    parser.add_argument("--finetune-examples", type=int, default=20000)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--finetune-learning-rate", type=float, default=1e-4, help="peak LR for the Transformer fine-tunes")
    parser.add_argument("--pooling", choices=("cls", "mean"), default="cls",
                        help="how the SST-2 classifier pools the Transformer's tokens (MLM alone never trains [CLS])")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=DATA)
    args = parser.parse_args()

    import keras
    import numpy as np

    from keras_ssl import backbones, data, evaluation, methods
    from keras_ssl.augment.text import mask_tokens

    backend = keras.backend.backend()
    keras.utils.set_random_seed(args.seed)
    train_text = data.load_wikitext(os.path.join(args.data, "wikitext-2", "wiki.test.tokens"))
    heldout_text = data.load_wikitext(os.path.join(args.data, "wikitext-2", "wiki.valid.tokens"))
    tokenizer = data.WordPieceTokenizer.train(train_text, vocabulary_size=args.vocabulary_size)
    train_ids, heldout_ids = tokenizer.pack(train_text, args.max_length), tokenizer.pack(heldout_text, args.max_length)
    vocabulary_size = tokenizer.vocabulary_size
    print(f"vocabulary {vocabulary_size}, {train_ids.shape[0]} training rows, {heldout_ids.shape[0]} held-out rows", flush=True)

    def make_encoder():
        return backbones.TransformerEncoder(vocabulary_size, "tiny", max_length=max(args.max_length, 64), norm_first=True)

    encoder = make_encoder()
    mlm = methods.MaskedLM(encoder, seed=args.seed)
    steps_per_epoch = len(train_ids) // args.batch_size
    mlm.compile(learning_rate=args.learning_rate, weight_decay=0.01)

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.steps, self.curve = time.perf_counter(), 0, []

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.steps % 50 == 0:
                self.curve.append((self.steps, float(logs["loss"]), float(logs["accuracy"])))
                print(f"  step {self.steps} loss {logs['loss']:.3f} acc {logs['accuracy']:.3f} "
                      f"{time.perf_counter() - self.start:.0f} s", flush=True)
            if time.perf_counter() - self.start > args.max_minutes * 60:
                self.model.stop_training = True

    before = mlm.evaluate_masked(heldout_ids, seed=1)
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
        _, _, targets, weights = mask_tokens(batch, mlm.mask_rate, vocabulary_size, mlm.mask_id, mlm.first_word_id, generator)
        targets, weights = keras.ops.convert_to_numpy(targets), keras.ops.convert_to_numpy(weights)
        hits += float(((targets == mode) * weights).sum())
        nll += float((-np.log(smoothed[targets]) * weights).sum())
        count += float(weights.sum())
    unigram = {"accuracy": hits / count, "perplexity": math.exp(nll / count), "predictions": int(count),
               "most_frequent_token": tokenizer.decode([mode]) or str(mode)}
    print("unigram", unigram, flush=True)

    # SST-2 fine-tuning at equal budgets.
    sentences, labels = data.load_sst2(os.path.join(args.data, "sst2", "train.tsv"))
    dev_sentences, dev_labels = data.load_sst2(os.path.join(args.data, "sst2", "dev.tsv"))
    rng = np.random.default_rng(args.seed)
    subset = rng.permutation(len(sentences))[: args.finetune_examples]
    x_train = tokenizer.encode([sentences[i] for i in subset], max_length=64)
    y_train = np.array([labels[i] for i in subset])
    x_dev, y_dev = tokenizer.encode(dev_sentences, max_length=64), np.array(dev_labels)

    def finetune(text_encoder, pooling, x_train, x_dev, learning_rate):
        keras.utils.set_random_seed(args.seed)
        model = evaluation.text_classifier(text_encoder, 2, pooling=pooling)
        steps = args.finetune_epochs * (len(x_train) // 32)
        schedule = keras.optimizers.schedules.CosineDecay(0.0, steps - steps // 10, warmup_target=learning_rate,
                                                          warmup_steps=steps // 10)
        model.compile(keras.optimizers.AdamW(schedule, weight_decay=0.01),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        t = time.perf_counter()
        model.fit(x_train, y_train, batch_size=32, epochs=args.finetune_epochs, verbose=0)
        accuracy = float(model.evaluate(x_dev, y_dev, batch_size=256, verbose=0, return_dict=True)["accuracy"])
        return {"dev_accuracy": accuracy, "seconds": time.perf_counter() - t}

    keras.utils.set_random_seed(args.seed + 1)
    scratch_encoder = make_encoder()
    finetuned = {"pretrained_masked_lm": finetune(mlm.encoder, args.pooling, x_train, x_dev, args.finetune_learning_rate),
                 "from_scratch": finetune(scratch_encoder, args.pooling, x_train, x_dev, args.finetune_learning_rate)}
    word2vec = methods.Word2Vec(vector_size=128, min_count=2, epochs=5, seed=args.seed)
    word2vec.fit([tokenizer.tokenize(line) for line in train_text], progress=False)
    # Word2Vec ids follow its own vocabulary: map SST-2 through it.
    w2v_train = word2vec.ids([tokenizer.tokenize(sentences[i]) for i in subset], max_length=64, truncate=True)
    w2v_dev = word2vec.ids([tokenizer.tokenize(s) for s in dev_sentences], max_length=64, truncate=True)
    finetuned["word2vec_mean_pooling"] = finetune(word2vec.as_embedding(trainable=True), "mean", w2v_train, w2v_dev, 1e-3)
    print("SST-2 dev", finetuned, flush=True)

    result = {
        "device": f"CPU ({os.cpu_count()} cores, {platform.machine()})",
        "backend": backend,
        "tokenizer": {"kind": "WordPiece (HF tokenizers)", "vocabulary_size": vocabulary_size, "trained_on": "wiki.test.tokens"},
        "encoder": f"TransformerEncoder tiny (128 dims, 2 pre-LN blocks, 2 heads, {max(args.max_length, 64)} tokens)",
        "pretraining": {"text": f"WikiText-2 test split, packed into {args.max_length}-token rows", "rows": int(len(train_ids)),
                        "batch_size": args.batch_size, "learning_rate": args.learning_rate, "planned_epochs": args.epochs,
                        "steps_trained": budget.steps, "epochs_trained": budget.steps / steps_per_epoch,
                        "train_seconds": train_seconds, "curve_step_loss_accuracy": budget.curve},
        "heldout": {"text": "WikiText-2 validation split", "random_init": before, "pretrained": after, "unigram_baseline": unigram},
        "sst2": {"train_examples": int(len(x_train)), "epochs": args.finetune_epochs, "pooling": args.pooling,
                 "learning_rate": args.finetune_learning_rate, "dev_examples": int(len(x_dev)),
                 **finetuned},
    }
    output = args.output or os.path.join(HERE, "results", f"text_wikitext2_sst2_{backend}.json")
    with open(output, "w") as f:
        json.dump(result, f, indent=2)
    print("->", output)


if __name__ == "__main__":
    main()
