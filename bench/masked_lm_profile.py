"""Where MaskedLM's training step spends its time: timing ablations, XLA on and off.

    KERAS_BACKEND=tensorflow python bench/masked_lm_profile.py            # BERT-tiny shape, batch 32 x 128
    python bench/masked_lm_profile.py --tiny                                # seconds, for a smoke run

Each part of the step runs as its own compiled function (`tf.function` with and without `jit_compile`, or
`jax.jit`), timed after warm-up; the median of `--repeats` calls is printed, as tokens/s of the batch:

- `mask`: `mask_tokens` alone (choose, corrupt, gather positions);
- `encoder`: the encoder's forward and backward passes on fixed ids (loss: mean of the states squared);
- `encoder+head`: the same plus the tied output layer at fixed masked positions and the cross-entropy;
- `sort+encoder`: the `encoder` part, but its input ids pass through `ops.where(max(top_k(...)) > 10**6, ...)`,
  which leaves them unchanged: only the presence of a sort in the compiled program differs;
- `loss+grad`: `compute_ssl_loss` and its gradient (everything but the optimizer);
- `train_step`: `fit`'s step, optimizer included.

A part far slower under XLA than without it names the cause. `--masking top_k` runs the masking as it was
before the fix (positions from `ops.top_k`), `--masking ranks` (default) as it is now (`top_positions`), so one
command measures before and after. Results go to bench/results/masked_lm_profile_<backend>.json, one entry per
masking.

Finding (TensorFlow, 2-core CPU): with XLA, a sort in MaskedLM's step (`top_k`, or `argsort` in a side run) made
the encoder's passes about 12x slower, although the sort itself took milliseconds; counting ranks instead of
sorting removed it.
"""

import argparse
import json
import os
import statistics
import sys

from timing import median_seconds, step_timer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def build(args):
    import keras

    from keras_ssl import backbones, methods

    keras.utils.set_random_seed(0)
    encoder = backbones.TransformerEncoder(
        args.vocabulary, "tiny", max_length=args.length, dim=args.dim, depth=args.depth, num_heads=args.heads
    )
    return methods.MaskedLM(encoder, seed=0)


def token_batch(args):
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(5, args.vocabulary, size=(args.batch, args.length)).astype("int32")
    ids[:, 0] = 2  # [CLS]
    return ids


def parts_tensorflow(method, ids, jit):
    import keras
    import tensorflow as tf
    from keras import ops

    from keras_ssl.augment.text import mask_tokens

    # Inputs are arguments, not captured constants, so the compiler cannot fold the lookups they feed.
    ids = tf.constant(ids)
    positions = tf.broadcast_to(tf.range(1, 20, dtype="int32"), (ids.shape[0], 19))
    generator = keras.random.SeedGenerator(1)
    variables = method.trainable_variables

    def mask(ids, positions):
        return mask_tokens(ids, method.mask_rate, method.vocabulary_size, 4, 5, generator)[0]

    def encoder(ids, positions):
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(method.encoder(ids, training=True)))
        return tape.gradient(loss, method.encoder.trainable_variables)

    def encoder_head(ids, positions):
        with tf.GradientTape() as tape:
            states = method.encoder(ids, training=True)
            logits = method.logits(ops.take_along_axis(states, positions[..., None], axis=1))
            targets = ops.take_along_axis(ids, positions, axis=1)
            loss = ops.mean(keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True))
        return tape.gradient(loss, variables)

    def sort_encoder(ids, positions):
        _, top = ops.top_k(ops.cast(ids % 7, "float32"), 4)
        ids = ops.where(ops.max(top) > 10**6, 0, ids)  # never true: the ids are unchanged
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(method.encoder(ids, training=True)))
        return tape.gradient(loss, method.encoder.trainable_variables)

    def loss_grad(ids, positions):
        with tf.GradientTape() as tape:
            loss, _ = method.compute_ssl_loss(ids, training=True)
        return tape.gradient(loss, variables)

    parts = (
        ("mask", mask),
        ("encoder", encoder),
        ("encoder+head", encoder_head),
        ("sort+encoder", sort_encoder),
        ("loss+grad", loss_grad),
    )
    compiled = {name: tf.function(fn, jit_compile=jit) for name, fn in parts}
    return {name: (lambda f=f: f(ids, positions)) for name, f in compiled.items()}


def parts_jax(method, ids, jit):
    import jax
    import keras
    from keras import ops

    from keras_ssl.augment.text import mask_tokens

    ids = jax.numpy.asarray(ids)
    positions = jax.numpy.broadcast_to(jax.numpy.arange(1, 20, dtype="int32"), (ids.shape[0], 19))
    trainable = [v.value for v in method.trainable_variables]
    non_trainable = [v.value for v in method.non_trainable_variables]

    def stateless(body):
        def fn(values, ids, positions):
            mapping = list(zip(method.trainable_variables, values)) + list(
                zip(method.non_trainable_variables, non_trainable)
            )
            with keras.StatelessScope(state_mapping=mapping):
                return body(ids, positions)

        return fn

    def mask_body(ids, positions):
        generator = keras.random.SeedGenerator(1)
        return mask_tokens(ids, method.mask_rate, method.vocabulary_size, 4, 5, generator)[0]

    def encoder_body(ids, positions):
        return ops.mean(ops.square(method.encoder(ids, training=False)))

    def head_body(ids, positions):
        states = method.encoder(ids, training=False)
        logits = method.logits(ops.take_along_axis(states, positions[..., None], axis=1))
        targets = ops.take_along_axis(ids, positions, axis=1)
        return ops.mean(keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True))

    def sort_body(ids, positions):
        _, top = ops.top_k(ops.cast(ids % 7, "float32"), 4)
        ids = ops.where(ops.max(top) > 10**6, 0, ids)  # never true: the ids are unchanged
        return ops.mean(ops.square(method.encoder(ids, training=False)))

    def loss_body(ids, positions):
        return method.compute_ssl_loss(ids, training=False)[0]

    wrap = jax.jit if jit else (lambda f: f)
    fns = {
        "mask": wrap(stateless(mask_body)),
        "encoder": wrap(jax.grad(stateless(encoder_body))),
        "encoder+head": wrap(jax.grad(stateless(head_body))),
        "sort+encoder": wrap(jax.grad(stateless(sort_body))),
        "loss+grad": wrap(jax.grad(stateless(loss_body))),
    }
    return {name: (lambda f=f: f(trainable, ids, positions)) for name, f in fns.items()}


def block(value):
    import keras

    for leaf in keras.tree.flatten(value):
        keras.ops.convert_to_numpy(leaf)
    return value


def measure(args, jit):
    import keras
    import numpy as np

    backend = keras.backend.backend()
    method = build(args)
    ids = token_batch(args)
    method.compile(learning_rate=1e-3, jit_compile=jit)
    # The step inside fit: build the model, then time steps of one long epoch.
    steps = args.warmup + args.repeats
    timer = step_timer(args.warmup)
    method.fit(np.tile(ids, (steps, 1)), batch_size=args.batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    results = {"train_step": statistics.median(timer.times)}
    parts = parts_tensorflow(method, ids, jit) if backend == "tensorflow" else parts_jax(method, ids, jit)
    for name, fn in parts.items():
        results[name] = median_seconds(lambda fn=fn: block(fn()), args.repeats, args.warmup)
    tokens = args.batch * args.length
    return {name: {"seconds": s, "tokens_per_second": tokens / s} for name, s in results.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--vocabulary", type=int, default=8000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="a small shape, for a smoke run")
    parser.add_argument("--masking", nargs="+", choices=("top_k", "ranks"), default=["top_k", "ranks"])
    parser.add_argument("--xla", nargs="+", choices=("on", "off"), default=["on", "off"])
    parser.add_argument("--label", default="", help="a note stored with the results (e.g. 'before fix')")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.tiny:
        args.batch, args.length, args.vocabulary, args.dim, args.repeats, args.warmup = 4, 32, 300, 32, 2, 1
    import keras

    backend = keras.backend.backend()
    from keras import ops

    import keras_ssl.augment.text as text

    ranks = text.top_positions
    report = {"backend": backend, "label": args.label, "shape": vars(args), "command": " ".join(sys.argv)}
    for masking in args.masking:
        # The masking as it was (top_k) or as it is (counted ranks); mask_tokens looks the function up per call.
        text.top_positions = ranks if masking == "ranks" else (lambda values, count: ops.top_k(values, count)[1])
        report[masking] = {}
        for xla in args.xla:
            report[masking][xla] = measure(args, xla == "on")
            for name, r in report[masking][xla].items():
                print(f"{backend} masking={masking:5s} xla={xla:3s} {name:13s} {r['tokens_per_second']:10.0f} tokens/s")
    text.top_positions = ranks
    output = args.output or os.path.join(HERE, "results", f"masked_lm_profile_{backend}.json")
    if not args.tiny:
        os.makedirs(os.path.dirname(output), exist_ok=True)
        with open(output, "w") as f:
            json.dump(report, f, indent=2)
        print("wrote", output)


if __name__ == "__main__":
    main()
