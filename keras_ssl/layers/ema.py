"""Momentum (exponential moving average) teachers, as in MoCo, BYOL and DINO.

Methods declare their `(online, teacher)` pairs (`Method.momentum_pairs`);
the base class runs the update below after every optimizer step.
"""

import math

import keras
from keras import ops


def momentum_schedule(step, total_steps, base=0.996, final=1.0):
    """BYOL's cosine schedule: `base` at step 0 rising to `final` at `total_steps` (then held).

    tau = final - (final - base) * (cos(pi * step / total_steps) + 1) / 2
    """
    total = ops.maximum(ops.cast(total_steps, "float32"), 1.0)
    progress = ops.clip(ops.cast(step, "float32") / total, 0.0, 1.0)
    return final - (final - base) * (ops.cos(math.pi * progress) + 1.0) / 2.0


def copy_as_teacher(model, name=None):
    """A frozen copy of a built model with the same weights (its variables are not trainable)."""
    teacher = keras.models.clone_model(model)
    teacher.set_weights(model.get_weights())
    teacher.trainable = False
    if name:
        teacher.name = name
    return teacher


def ema_value(teacher_weight, online_weight, momentum):
    """momentum * teacher + (1 - momentum) * online, in the teacher's dtype.

    BatchNorm moving statistics are averaged the same way as weights, so the
    teacher's inference mode stays consistent with its weights.
    """
    momentum = ops.cast(momentum, teacher_weight.dtype)
    return momentum * teacher_weight + (1.0 - momentum) * ops.cast(online_weight, teacher_weight.dtype)
