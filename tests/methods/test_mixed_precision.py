"""Every registered method trains under mixed_bfloat16 and mixed_float16 (loss scaling), generated from the registry.

One step each, on real data: the loss must be finite, the weights must stay
float32 while the encoder computes in the policy's low precision, and under
mixed_float16 the default optimizer must scale the loss. The default suite
runs the two whose float32 casts once failed (MAE, the VAE); the whole
registry runs in the `large` suite.
"""

import keras
import numpy as np
import pytest
from test_methods import ENCODERS, KERAS_METHODS, METHOD_KWARGS, real_inputs, tiny_encoder

from keras_ssl import methods


@pytest.fixture(params=["mixed_bfloat16", "mixed_float16"])
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


DEFAULT_SUITE = {"vae", "mae"}


@pytest.mark.parametrize(
    "name", [n if n in DEFAULT_SUITE else pytest.param(n, marks=pytest.mark.large) for n in KERAS_METHODS]
)
def test_one_step_under_mixed_precision(name, policy):
    method = methods.get_method(name)(ENCODERS.get(name, tiny_encoder)(), **METHOD_KWARGS.get(name, {}))
    x, _ = real_inputs(method, 8)
    history = method.fit(x, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(v.dtype == "float32" for v in method.encoder.trainable_weights)
    assert method.encoder.compute_dtype == policy.removeprefix("mixed_")
    if policy == "mixed_float16":
        assert isinstance(method.optimizer, keras.optimizers.LossScaleOptimizer)
