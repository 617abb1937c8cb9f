"""The zoo's promise end to end, each step in a fresh process:

load("simclr_resnet") -> downstream classifier -> fit with AdamW changes the encoder -> export ->
tf.saved_model.load serves the same outputs -> load of that bundle under JAX fine-tunes again.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_ssl.testing import REPO_ROOT, cifar10_sample

# Fits `classifier` for one epoch with AdamW; asserts most arrays of `tracked` changed.
FIT = """
before = [w.copy() for w in tracked.get_weights()]
classifier.compile(optimizer=keras.optimizers.AdamW(1e-3),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
classifier.fit(x, y, batch_size=16, epochs=1, verbose=0)
changed = sum(not np.allclose(a, b) for a, b in zip(before, tracked.get_weights()))
print(keras.backend.backend(), "arrays changed:", changed, "of", len(before))
assert changed > len(before) // 2
"""

FINE_TUNE = (
    """
import keras, numpy as np, keras_ssl
x, y = np.load("{tmp}/x.npy"), np.load("{tmp}/y.npy")
encoder = keras_ssl.load("simclr_resnet")
inputs = keras.Input((32, 32, 3))
classifier = keras.Model(inputs, keras.layers.Dense(10)(encoder(inputs)))
tracked = encoder
"""
    + FIT
    + """
keras_ssl.export(classifier, "{tmp}/bundle")
np.save("{tmp}/logits.npy", classifier.predict(x, verbose=0))
"""
)

SERVE = """
import numpy as np, tensorflow as tf
x = np.load("{tmp}/x.npy")
loaded = tf.saved_model.load("{tmp}/bundle")  # keep a reference: its variables die with it
served = loaded.serve(tf.constant(x))["features"].numpy()
np.testing.assert_allclose(served, np.load("{tmp}/logits.npy"), atol=1e-4)
print("served max diff", np.abs(served - np.load("{tmp}/logits.npy")).max())
"""

FINE_TUNE_AGAIN_UNDER_JAX = (
    """
import keras, numpy as np, keras_ssl
assert keras.backend.backend() == "jax"
x, y = np.load("{tmp}/x.npy"), np.load("{tmp}/y.npy")
classifier = keras_ssl.load("{tmp}/bundle")
np.testing.assert_allclose(classifier.predict(x, verbose=0), np.load("{tmp}/logits.npy"), atol=1e-4)
tracked = classifier
"""
    + FIT
)


def run(script, tmp_path, backend=None):
    env = {**os.environ, "KERAS_SSL_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO_ROOT)}
    if backend:
        env["KERAS_BACKEND"] = backend
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script.format(tmp=tmp_path))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


@pytest.mark.large
@pytest.mark.savedmodel
def test_shipped_preset_fine_tunes_exports_serves_and_fine_tunes_again_under_jax(tmp_path):
    (x, y), _ = cifar10_sample(num_train=32, num_test=1)
    np.save(tmp_path / "x.npy", x.astype("float32") / 255.0)
    np.save(tmp_path / "y.npy", y)
    assert "arrays changed" in run(FINE_TUNE, tmp_path)
    assert "served max diff" in run(SERVE, tmp_path)
    assert "jax arrays changed" in run(FINE_TUNE_AGAIN_UNDER_JAX, tmp_path, backend="jax")
