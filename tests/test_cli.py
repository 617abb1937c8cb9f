"""The `keras-ssl` command: help, exit codes, and pretrain -> evaluate -> export on a tiny real CIFAR sample."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras_ssl
from keras_ssl import cli
from keras_ssl.testing import REPO_ROOT, cifar10_sample
from keras_ssl.utils.files import sha256_file


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    (x_train, y_train), (x_test, y_test) = cifar10_sample(num_train=32, num_test=16)
    path = tmp_path_factory.mktemp("data") / "tiny_cifar.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


@pytest.mark.parametrize("command", [[], ["list"], ["pretrain"], ["evaluate"], ["export"], ["quickstart"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: keras-ssl" in capsys.readouterr().out


def test_list_shows_presets_aliases_and_methods(capsys):
    assert cli.main(["list"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "simclr_resnet18_cifar10" in out and "alias: simclr_resnet" in out
    assert "methods: " in out and "byol" in out


def test_unknown_names_are_usage_errors_with_close_matches(capsys):
    assert cli.main(["pretrain", "simclr_resnt", "--output", "unused"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "Unknown preset 'simclr_resnt'" in err and "simclr_resnet" in err
    assert cli.main(["export", "no_such_preset", "out"]) == cli.EXIT_USAGE


def test_bad_usage_exits_2_from_a_real_process():
    result = subprocess.run(
        [sys.executable, "-m", "keras_ssl.cli", "evaluate"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 2 and "--data" in result.stderr


@pytest.mark.savedmodel
def test_pretrain_evaluate_export(tiny_npz, tmp_path, capsys):
    bundle = str(tmp_path / "bundle")
    args = ["pretrain", "simclr", "--data", tiny_npz, "--output", bundle, "--epochs", "1", "--batch-size", "16"]
    assert cli.main(args) == cli.EXIT_OK
    assert f"bundle: {bundle}" in capsys.readouterr().out
    encoder = keras_ssl.load(bundle)
    assert encoder.output_shape == (None, 64)

    # Nothing already on disk is lost: a second pretrain to the same path refuses without --overwrite.
    before = sha256_file(os.path.join(bundle, "assets", "keras_ssl", "model.weights.h5"))
    assert cli.main(args) == cli.EXIT_FAILURE
    assert "already exists" in capsys.readouterr().err
    assert sha256_file(os.path.join(bundle, "assets", "keras_ssl", "model.weights.h5")) == before

    report = tmp_path / "metrics.json"
    assert cli.main(["evaluate", bundle, "--data", tiny_npz, "--k", "5", "--json", str(report)]) == cli.EXIT_OK
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(report.read_text())
    assert 0.0 <= printed["knn"] <= 1.0 and 0.0 <= printed["linear_probe"] <= 1.0 and printed["train_size"] == 32

    archive = str(tmp_path / "encoder.tar.gz")
    assert cli.main(["export", bundle, archive]) == cli.EXIT_OK
    card_fields = json.loads(capsys.readouterr().out)
    assert card_fields == {"file": "encoder.tar.gz", "sha256": sha256_file(archive), "size": os.path.getsize(archive)}
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(keras_ssl.load(archive).predict(x, verbose=0), encoder.predict(x, verbose=0), atol=1e-5)


def test_failures_exit_1_with_one_line_on_stderr(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "missing_bundle"), "--data", "x.npz"]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("keras-ssl evaluate: error: FileNotFoundError") and "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    from keras_ssl.testing import shared_data_file

    with open(shared_data_file("wikitext-2/wiki.valid.tokens"), encoding="utf-8") as f:
        lines = [line for line in f if line.strip()][:300]
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


@pytest.mark.savedmodel
def test_pretrain_text_methods_ship_their_vocabulary(tiny_text, tmp_path, capsys):
    from keras_ssl import data

    bundle = str(tmp_path / "mlm")
    assert (
        cli.main(
            [
                "pretrain",
                "masked_lm",
                "--data",
                tiny_text,
                "--output",
                bundle,
                "--epochs",
                "1",
                "--max-steps",
                "2",
                "--batch-size",
                "8",
            ]
        )
        == cli.EXIT_OK
    )
    tokenizer = data.WordPieceTokenizer.load(bundle)  # found in the bundle's assets/keras_ssl/
    encoder = keras_ssl.load(bundle)
    hidden = encoder.predict(tokenizer.encode(["the game was released in japan"], max_length=128), verbose=0)
    assert hidden.shape == (1, 128, 128) and np.isfinite(hidden).all()

    bundle = str(tmp_path / "w2v")
    assert cli.main(["pretrain", "word2vec", "--data", tiny_text, "--output", bundle]) == cli.EXIT_OK
    with open(os.path.join(bundle, "assets", "keras_ssl", "vocabulary.txt"), encoding="utf-8") as f:
        vocabulary = f.read().split("\n")
    embedding = keras_ssl.load(bundle)
    assert embedding.output_shape[-1] == 100 and "the" in vocabulary
    assert embedding.get_layer("embedding").input_dim >= len([w for w in vocabulary if w])
