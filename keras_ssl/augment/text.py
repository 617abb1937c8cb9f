"""On-device token masking for masked-language-model pretraining (BERT's 80/10/10 rule)."""

import math

import keras
from keras import ops

from keras_ssl.utils import replicas


def mask_tokens(token_ids, mask_rate, vocabulary_size, mask_id, first_word_id, seed_generator, max_predictions=None):
    """Chooses tokens to predict and corrupts them, inside the train step.

    Each word token (id >= `first_word_id`: never padding or a special
    token) is chosen with probability `mask_rate`. Chosen tokens become
    [MASK] 80% of the time, a random word 10% and stay unchanged 10%
    (Devlin et al., 2019, sec. 3.1). At most `max_predictions` tokens per
    sequence are chosen (default: 1.5x the expected count for a full
    sequence), so predictions are gathered into a fixed-size array.

    Returns:
        `(inputs, positions, targets, weights)`: the corrupted ids (B, L), the
        positions to predict (B, P), the original ids there (B, P) and 1.0
        where a position was really chosen, 0.0 for filler (B, P).
    """
    length = token_ids.shape[1]
    if length is None:
        raise ValueError("Masked-language-model batches need a fixed sequence length (pad to max_length).")
    max_predictions = int(max_predictions or min(length, max(1, math.ceil(1.5 * mask_rate * length))))
    shape = ops.shape(token_ids)
    candidates = ops.cast(token_ids >= first_word_id, "float32")

    def uniform(s):  # per-sample draws: under tf.distribute, this replica's rows of the global batch's draw
        return replicas.per_sample(lambda s: keras.random.uniform(s, seed=seed_generator), s)

    chosen = ops.cast(uniform(shape) < mask_rate, "float32") * candidates
    # Chosen tokens first (priority > 1), in random order; the top P become the predictions.
    priority = chosen * 2.0 + uniform(shape)
    positions = top_positions(priority, max_predictions)
    weights = ops.take_along_axis(chosen, positions, axis=1)
    targets = ops.take_along_axis(token_ids, positions, axis=1)
    # Only the gathered positions are corrupted, so every corrupted token is predicted.
    selected = ops.sum(ops.one_hot(positions, length) * weights[..., None], axis=1) > 0.5
    action = uniform(shape)
    random_words = replicas.per_sample(
        lambda s: keras.random.randint(s, first_word_id, vocabulary_size, seed=seed_generator, dtype="int32"), shape
    )
    ids = ops.cast(token_ids, "int32")
    corrupted = ops.where(action < 0.8, mask_id, ops.where(action < 0.9, random_words, ids))
    return ops.where(selected, corrupted, ids), positions, targets, weights


def top_positions(values, count):
    """The indices of the `count` largest values of each row, largest first: `ops.top_k(values, count)[1]`.

    The same indices as `top_k` (equal values: the lower index first), found by counting, for each element,
    the elements of its row ranked above it (O(length^2) comparisons per row, the size of one attention
    head's score matrix), with no sort. In MaskedLM's step compiled by XLA for a CPU, `top_k` made the whole
    step about 12x slower (BERT-tiny shape, TensorFlow with `jit_compile=True`: 5.7 s per step with `top_k`,
    0.46 s with this; the encoder's passes slowed down as soon as one scalar of their input depended on a
    sort; bench/masked_lm_profile.py), although the sort itself took milliseconds.
    """
    length = values.shape[1]
    if length is None:
        raise ValueError("top_positions needs rows of a fixed length.")
    index = ops.arange(length, dtype="int32")
    mine, theirs = values[:, :, None], values[:, None, :]  # (B, L, 1) and (B, 1, L): element l against m
    earlier = ops.less(index[None, :], index[:, None])  # [l, m]: m comes before l
    above = ops.logical_or(ops.greater(theirs, mine), ops.logical_and(ops.equal(theirs, mine), earlier[None]))
    rank = ops.sum(ops.cast(above, "int32"), axis=2)  # (B, L): a permutation of 0..L-1 in each row
    at_rank = ops.cast(ops.equal(rank[:, :, None], ops.arange(count, dtype="int32")[None, None, :]), "int32")
    return ops.sum(at_rank * index[None, :, None], axis=1)  # (B, count)
