"""Training tokens/s of KerasHub's BertMaskedLM, fed by its own MaskedLMMaskGenerator (the reference of
bench/cpu_side_by_side.py).

Runs in the isolated environment of bench/setup_keras_hub_env.sh (keras-hub never enters the project's)::

    bash bench/setup_keras_hub_env.sh
    KERAS_BACKEND=tensorflow bench/.venv-keras-hub/bin/python bench/keras_hub_mlm.py --jit 1

The model has the dimensions of keras_ssl's side: `BertBackbone` with 2 layers, hidden 128, 2 heads, MLP 512,
8,000 ids, 128 tokens per row; batch 32. Rows of random word ids (5..7999, [CLS] first) are masked by
`keras_hub.layers.MaskedLMMaskGenerator` (15% of tokens, at most 29 per row as in keras_ssl, 80/10/10) in a
`tf.data` map, the way KerasHub's pretraining guides feed it; `fit` trains with sparse cross-entropy from logits,
weighted by the mask weights, AdamW. The last line printed is the result as JSON: the median seconds of the timed
steps and tokens/s (every token of the batch counts, as for keras_ssl).
"""

import argparse
import json
import math
import statistics

from timing import step_timer


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jit", type=int, default=1, help="1: jit_compile=True; 0: Keras's default ('auto')")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--vocabulary", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=args.vocabulary,
        num_layers=2,
        num_heads=2,
        hidden_dim=128,
        intermediate_dim=512,
        dropout=0.1,
        max_sequence_length=args.length,
    )
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()],
        jit_compile=True if args.jit else "auto",
    )
    rng = np.random.default_rng(0)
    steps = args.warmup + args.steps
    ids = rng.integers(5, args.vocabulary, size=(args.batch * steps, args.length)).astype("int32")
    ids[:, 0] = 2
    generator = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=args.vocabulary,
        mask_selection_rate=0.15,
        mask_token_id=4,
        mask_selection_length=min(args.length, math.ceil(1.5 * 0.15 * args.length)),
        unselectable_token_ids=[0, 1, 2, 3, 4],
    )

    def to_inputs(batch):
        masked = generator(batch)
        x = {
            "token_ids": masked["token_ids"],
            "segment_ids": tf.zeros_like(batch),
            "padding_mask": tf.not_equal(batch, 0),
            "mask_positions": masked["mask_positions"],
        }
        return x, masked["mask_ids"], masked["mask_weights"]

    data = (
        tf.data.Dataset.from_tensor_slices(ids)
        .batch(args.batch, drop_remainder=True)
        .map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )

    timer = step_timer(args.warmup)
    model.fit(data, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
    seconds = statistics.median(timer.times)
    print(
        json.dumps(
            {
                "library": "keras_hub",
                "keras_hub_version": keras_hub.__version__,
                "keras_version": keras.__version__,
                "backend": keras.backend.backend(),
                "jit_compile": bool(args.jit),
                "seconds_per_step": seconds,
                "tokens_per_second": args.batch * args.length / seconds,
                "step_seconds": timer.times,
            }
        )
    )


if __name__ == "__main__":
    main()
