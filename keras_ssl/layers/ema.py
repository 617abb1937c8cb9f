"""Momentum (exponential moving average) teachers, as in MoCo, BYOL and DINO."""

import math

import keras
from keras import ops


def momentum_schedule(step, total_steps, base=0.996, final=1.0):
    """BYOL's cosine schedule: `base` at step 0 rising to `final` at `total_steps`.

    tau = final - (final - base) * (cos(pi * step / total_steps) + 1) / 2
    """
    progress = ops.minimum(ops.cast(step, "float32") / float(max(1, total_steps)), 1.0)
    return final - (final - base) * (ops.cos(math.pi * progress) + 1.0) / 2.0


def copy_as_teacher(model, name=None):
    """A frozen copy of a built model with the same weights (its variables are not trainable)."""
    teacher = keras.models.clone_model(model)
    teacher.set_weights(model.get_weights())
    teacher.trainable = False
    if name:
        teacher.name = name
    return teacher


def ema_update(teacher, student, momentum):
    """teacher <- momentum * teacher + (1 - momentum) * student, weight by weight.

    BatchNorm moving statistics are averaged the same way, so the teacher's
    inference mode stays consistent with its weights.
    """
    for t, s in zip(teacher.weights, student.weights):
        t.assign(momentum * t + (1.0 - momentum) * ops.cast(s, t.dtype))
