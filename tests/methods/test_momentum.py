"""Momentum teachers and queues: updated every step, not trainable, saved and restored."""

import keras
import numpy as np
import pytest

from keras_ssl import backbones, layers, methods
from keras_ssl.testing import cifar10_sample


def tiny_encoder():
    return backbones.ConvNet(filters=(4, 8), input_shape=(32, 32, 3))


def values(model):
    return [np.array(v) for v in model.weights]


def differs(a, b):
    return any(not np.allclose(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize(
    "make, teacher",
    [
        (lambda: methods.MoCo(tiny_encoder(), projection_dim=8, queue_size=16, momentum=0.5), "key_encoder"),
        (lambda: methods.MoCo(tiny_encoder(), projection_dim=8, version=3, momentum=0.5), "key_encoder"),
        (lambda: methods.BYOL(tiny_encoder(), projection_dim=8, hidden_dim=16, momentum=0.5), "target_encoder"),
    ],
    ids=["moco_v2", "moco_v3", "byol"],
)
def test_teacher_follows_the_student_and_is_not_trainable(make, teacher):
    (x, _), _ = cifar10_sample(num_train=16)
    method = make()
    method.compile(optimizer=keras.optimizers.SGD(0.1))
    method.build((None, 32, 32, 3))
    target = getattr(method, teacher)
    trainable_ids = {id(v) for v in method.trainable_variables}
    assert target.weights and not any(id(v) in trainable_ids for v in target.weights)
    np.testing.assert_allclose(values(target)[0], values(method.encoder)[0])  # starts as a copy
    before = values(target)
    # MoCo v2's momentum is constant: one step. BYOL's and MoCo v3's rise to 1 over the planned steps, so
    # their last step leaves the teacher where it is: two steps, the first of which moves it.
    scheduled = isinstance(method, methods.BYOL) or getattr(method, "version", 2) == 3
    method.fit(x, batch_size=8 if scheduled else 16, epochs=1, verbose=0)
    after = values(target)
    assert differs(before, after), "the teacher did not move"
    kernel_before, kernel_after, student = before[0], after[0], np.array(method.encoder.weights[0])
    assert not np.allclose(kernel_after, student)
    if not scheduled:
        # EMA after the optimizer step: teacher = m * teacher_before + (1 - m) * student_now, m = 0.5.
        np.testing.assert_allclose(kernel_after, 0.5 * kernel_before + 0.5 * student, atol=1e-5)


def test_queue_takes_each_batch_of_keys_and_wraps_around():
    queue = layers.FeatureQueue(size=5, dim=2)
    queue.push(keras.ops.ones((3, 2)))
    queue.push(2 * keras.ops.ones((3, 2)))  # rows 3, 4 then wraps to row 0
    keys = np.array(queue.keys)
    np.testing.assert_allclose(keys[:, 0], [2, 1, 1, 2, 2])
    assert int(np.array(queue.position)) == 1
    assert not queue.trainable_weights
    with pytest.raises(ValueError, match="Cannot push 6 keys"):
        queue.push(keras.ops.ones((6, 2)))


def test_moco_queue_fills_during_fit():
    (x, _), _ = cifar10_sample(num_train=16)
    method = methods.MoCo(tiny_encoder(), projection_dim=8, queue_size=16)
    method.compile(optimizer=keras.optimizers.SGD(0.1))
    method.build((None, 32, 32, 3))
    before = np.array(method.queue.keys)
    method.fit(x, batch_size=8, epochs=1, verbose=0)  # 2 steps x 8 keys fill all 16 slots
    after = np.array(method.queue.keys)
    assert int(np.array(method.queue.position)) == 0
    changed_rows = ~np.all(np.isclose(before, after), axis=1)
    assert changed_rows.all(), f"rows never written: {np.flatnonzero(~changed_rows)}"


def test_checkpoint_restores_queue_and_teacher(tmp_path):
    (x, _), _ = cifar10_sample(num_train=16)

    def make():
        method = methods.MoCo(tiny_encoder(), projection_dim=8, queue_size=16)
        method.compile(optimizer=keras.optimizers.SGD(0.1))
        method.build((None, 32, 32, 3))
        return method

    trained = make()
    trained.fit(x, batch_size=8, epochs=1, verbose=0)
    trained.save_weights(tmp_path / "moco.weights.h5")
    resumed = make()
    assert differs(values(trained.key_encoder), values(resumed.key_encoder))
    resumed.load_weights(tmp_path / "moco.weights.h5")
    np.testing.assert_allclose(np.array(resumed.queue.keys), np.array(trained.queue.keys))
    assert int(np.array(resumed.queue.position)) == int(np.array(trained.queue.position))
    for a, b in zip(values(resumed.key_encoder), values(trained.key_encoder)):
        np.testing.assert_allclose(a, b)


def test_a_second_fit_with_my_optimizer_plans_its_own_momentum_schedule():
    # The momentum schedule's start and length live in variables the compiled step reads, so a second fit (whose
    # step Keras does not retrace when the user's optimizer is kept) follows its own schedule. Before, it kept the
    # first fit's length while optimizer.iterations kept counting: momentum stuck at 1, the teacher frozen.
    (x, _), _ = cifar10_sample(num_train=16)
    method = methods.BYOL(tiny_encoder(), projection_dim=8, hidden_dim=16, momentum=0.5)
    method.compile(optimizer=keras.optimizers.SGD(0.1))
    method.fit(x, batch_size=4, epochs=1, verbose=0)  # 4 steps
    assert int(method.schedule_start) == 0 and int(method.schedule_steps) == 4
    before = values(method.target_encoder)
    method.fit(x, batch_size=4, epochs=2, verbose=0)  # 8 more steps, its own cosine from 0.5 to 1
    assert int(method.schedule_start) == 4 and int(method.schedule_steps) == 8
    assert differs(before, values(method.target_encoder)), "the teacher did not move during the second fit"
    assert float(method.teacher_momentum()) == pytest.approx(1.0)  # the end of the second schedule
