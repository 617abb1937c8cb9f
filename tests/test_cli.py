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

# A tiny encoder, so each pretraining run below costs seconds.
TINY = ["--backbone", "convnet", "--width", "0.125", "--image-size", "32", "--batch-size", "8", "--max-steps", "2"]


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    (x_train, y_train), (x_test, y_test) = cifar10_sample(num_train=32, num_test=16)
    path = tmp_path_factory.mktemp("data") / "tiny_cifar.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory):
    """40 CIFAR-10 images as PNG files, one subfolder per class (pretraining ignores the labels)."""
    from PIL import Image

    (images, labels), _ = cifar10_sample(num_train=40, num_test=0)
    root = tmp_path_factory.mktemp("pngs") / "cifar"
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / f"class_{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return str(root)


def run_cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [[], ["list"], ["pretrain"], ["evaluate"], ["export"], ["quickstart"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: keras-ssl" in capsys.readouterr().out


def test_help_and_list_import_no_framework():
    # The start-up budget (under 2 s) holds when nothing heavy loads before a command runs; a subprocess
    # checks that, rather than a timing that would depend on the machine.
    code = (
        "import json, sys\n"
        "from keras_ssl import cli\n"
        "for argv in (['--help'], ['pretrain', '--help'], ['evaluate', '--help'], ['list']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules)\n"
        "print('LOADED=' + json.dumps(loaded))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED=[]" in result.stdout, result.stdout[-500:]
    assert "simclr_resnet18_cifar10" in result.stdout and "--checkpoint-dir" in result.stdout


def test_list_shows_presets_aliases_and_methods(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == cli.EXIT_OK
    assert "simclr_resnet18_cifar10" in out and "alias: simclr_resnet" in out
    assert "methods: " in out and "byol" in out


@pytest.mark.savedmodel  # under torch, pretrain refuses first: its bundle is a TensorFlow SavedModel
def test_unknown_names_are_usage_errors_with_close_matches(capsys):
    code, _, err = run_cli(capsys, "pretrain", "simclr_resnt", "--output", "unused")
    assert code == cli.EXIT_USAGE
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


@pytest.mark.parametrize(
    "command, option, value",
    [
        ("pretrain", "--epochs", "0"),
        ("pretrain", "--batch-size", "-8"),
        ("pretrain", "--image-size", "0"),
        ("pretrain", "--learning-rate", "0"),
        ("pretrain", "--learning-rate", "-0.001"),
        ("pretrain", "--learning-rate", "nan"),
        ("pretrain", "--width", "0"),
        ("pretrain", "--max-steps", "0"),
        ("pretrain", "--seed", "-1"),
        ("pretrain", "--checkpoint-every", "0"),
        ("pretrain", "--checkpoint-every", "often"),
        ("pretrain", "--distribute-timeout", "0"),
        ("evaluate", "--k", "-5"),
        ("evaluate", "--temperature", "0"),
        ("evaluate", "--test-fraction", "1.5"),
        ("evaluate", "--train-size", "zero"),
    ],
)
def test_values_out_of_range_exit_2_and_write_nothing(command, option, value, tiny_npz, tmp_path, capsys):
    target = ["simclr", "--output", tmp_path / "bundle"] if command == "pretrain" else [tmp_path / "bundle"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, *map(str, target), "--data", tiny_npz, option, value])
    assert exit_info.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"argument {option}: expected" in err and f"Received: {value}" in err.replace("'", "")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backbone", "vit-nano", "--image-size", "30"], "--image-size must be a multiple of 4"),
        (["--backbone", "convnet", "--stem", "imagenet"], "--stem applies to ResNets"),
        (["--batch-size", "1"], "at least 2 images per batch"),
    ],
)
@pytest.mark.savedmodel  # under torch, pretrain refuses first: its bundle is a TensorFlow SavedModel
def test_inconsistent_options_are_usage_errors(extra, message, tiny_npz, tmp_path, capsys):
    code, _, err = run_cli(capsys, "pretrain", "simclr", "--data", tiny_npz, "--output", tmp_path / "b", *extra)
    assert code == cli.EXIT_USAGE and message in err
    assert not list(tmp_path.iterdir())


@pytest.mark.savedmodel  # under torch, pretrain refuses first: its bundle is a TensorFlow SavedModel
def test_a_preset_fixes_its_backbone(tiny_npz, tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "pretrain", "simclr_resnet", "--data", tiny_npz, "--output", tmp_path / "b", "--backbone", "resnet50"
    )
    assert code == cli.EXIT_USAGE and "fixes its backbone" in err and not list(tmp_path.iterdir())


@pytest.mark.savedmodel  # under torch, pretrain refuses first: its bundle is a TensorFlow SavedModel
def test_multi_worker_without_a_cluster_is_a_clear_usage_error(tiny_npz, tmp_path, capsys, monkeypatch):
    for name in ("TF_CONFIG", "KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run_cli(
        capsys, "pretrain", "simclr", "--data", tiny_npz, "--output", tmp_path / "b", "--distribute", "multi-worker"
    )
    assert code == cli.EXIT_USAGE
    assert "--distribute multi-worker" in err and ("TF_CONFIG" in err or "KERAS_DISTRIBUTION_JOB_ADDRESSES" in err)
    assert "Traceback" not in err and not list(tmp_path.iterdir())


def _tensorboard_scalars(folder):
    """{tag: [values]} of the event files below `folder` (Keras writes TF2 summaries: tensors)."""
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    scalars = {}
    for tag in accumulator.Tags()["tensors"]:
        events = accumulator.Tensors(tag)
        scalars[tag] = [float(np.asarray(_tensor_value(e.tensor_proto))) for e in events]
    return scalars


def _tensor_value(proto):
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(proto)


@pytest.mark.large
@pytest.mark.savedmodel
def test_pretrain_a_folder_resume_artefacts_and_evaluate(png_folder, tmp_path, capsys):
    from PIL import Image

    bundle, backups = tmp_path / "bundle", tmp_path / "backups"
    args = ["pretrain", "simclr", "--data", png_folder, "--output", bundle, "--checkpoint-dir", backups, *TINY]
    code, out, err = run_cli(capsys, *args, "--epochs", "1", "--distribute", "none")
    assert code == cli.EXIT_OK, err
    assert "40 images (an image folder" in out and "2 per epoch" in out and "global 8 = 1 replica(s) x 8" in out
    assert "resuming" not in out and (backups / "backup.npz").is_file()

    # The same command with more epochs continues the backup: only epoch 2 trains.
    code, out, err = run_cli(capsys, *args, "--epochs", "2", "--distribute", "none", "--overwrite")
    assert code == cli.EXIT_OK, err
    assert "resuming at epoch 2/2, step 0 (1 epoch(s) already trained" in out
    assert "Epoch 2/2" in out and "Epoch 1/2" not in out

    run = tmp_path / "bundle.run"
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == [1, 2] and len(history["loss"]) == 2 and {"loss", "embedding_std"} <= set(history)
    assert all(np.isfinite(history["loss"]))
    with Image.open(run / "loss.png") as image:
        assert image.format == "PNG" and image.size[0] > 100
    scalars = _tensorboard_scalars(run / "tensorboard" / "train")
    assert len(scalars["epoch_loss"]) == 2
    np.testing.assert_allclose(scalars["epoch_loss"], history["loss"], rtol=1e-5)
    command = (run / "command.txt").read_text()
    assert "keras-ssl pretrain simclr --data" in command and "--epochs 2" in command
    metadata = json.loads((bundle / "assets" / "keras_ssl" / "metadata.json").read_text())
    assert metadata["command"] in command and metadata["recipe"]["backbone"]["name"] == "convnet"

    # Asking for fewer epochs than the backup holds is refused before anything is touched.
    code, _, err = run_cli(capsys, *args, "--epochs", "1", "--overwrite")
    assert code == cli.EXIT_USAGE and "more than --epochs 1" in err

    # Evaluate on the same folder, read as labelled (one subfolder per class), with a held-out fifth.
    code, out, err = run_cli(capsys, "evaluate", bundle, "--data", png_folder, "--k", "5")
    assert code == cli.EXIT_OK, err
    results = json.loads(out)
    assert results["num_classes"] == 10 and results["test_size"] == 10 and results["train_size"] == 30
    assert 0.0 <= results["knn"] <= 1.0 and 0.0 <= results["linear_probe"] <= 1.0

    # A generic labelled .npz: other image size, grayscale test images, labels that are not 0..C-1.
    rng = np.random.default_rng(0)
    train, test = tmp_path / "train.npz", tmp_path / "test.npz"
    np.savez(train, images=rng.integers(0, 256, (24, 40, 36, 3), dtype="uint8"), labels=np.repeat([3, 8], 12))
    np.savez(test, x_test=rng.random((6, 40, 36, 1), dtype="float32"), y_test=np.repeat([3, 8], 3)[:, None])
    code, out, err = run_cli(capsys, "evaluate", bundle, "--data", train, "--test-data", test, "--k", "3")
    assert code == cli.EXIT_OK, err
    results = json.loads(out)
    assert results["num_classes"] == 2 and results["test_size"] == 6 and results["image_size"] == 32
    code, _, err = run_cli(capsys, "evaluate", bundle, "--data", train)
    assert code == cli.EXIT_USAGE and "--test-fraction" in err
    code, out, _ = run_cli(capsys, "evaluate", bundle, "--data", train, "--test-fraction", "0.25", "--k", "3")
    assert code == cli.EXIT_OK and json.loads(out)["test_size"] == 6


@pytest.mark.large
@pytest.mark.savedmodel
def test_pretrain_mirrored_on_one_device_with_default_run_folder(tiny_npz, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    code, out, err = run_cli(
        capsys, "pretrain", "byol", "--data", tiny_npz, "--output", bundle, *TINY, "--distribute", "mirrored"
    )
    assert code == cli.EXIT_OK, err
    assert "--distribute mirrored" in out and "global 8 = 1 replica(s) x 8" in out
    assert "32 images of 32x32x3" in out and "2/2" in out  # --max-steps shortens an epoch of arrays too
    assert (tmp_path / "bundle.run" / "backups" / "backup.npz").is_file()
    assert keras_ssl.load(str(bundle)).output_shape == (None, 16)


@pytest.mark.large
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


@pytest.mark.large  # 19 s under TensorFlow, 50 s under JAX on this loaded 2-core CPU
@pytest.mark.savedmodel
def test_pretrain_a_keras_applications_backbone(tiny_npz, tmp_path, capsys):
    """--backbone keras.applications.NAME: a tiny run whose bundle holds the wrapper and its input scaling."""
    import keras

    weights = str(tmp_path / "vgg16_no_top.weights.h5")
    source = keras.applications.VGG16(include_top=False, pooling="avg", weights=None, input_shape=(32, 32, 3))
    source.save_weights(weights)
    bundle = str(tmp_path / "bundle")
    backbone = ["--backbone", "keras.applications.VGG16", "--backbone-weights", weights]
    args = ["pretrain", "simclr", "--data", tiny_npz, "--output", bundle, "--image-size", "32"]
    code, out, err = run_cli(capsys, *args, *backbone, "--batch-size", "8", "--max-steps", "2")
    assert code == cli.EXIT_OK, err
    assert f"keras.applications.VGG16 (weights {weights}): 32x32x3 -> 512 features" in out
    encoder = keras_ssl.load(bundle)
    assert isinstance(encoder, keras_ssl.layers.ImageModel)  # the bundle's uint8/float pixel handling wraps it
    scaling = encoder.model.get_layer("input_scaling")
    assert scaling.get_config()["channel_order"] == [2, 1, 0]  # vgg16's caffe mode: BGR
    assert encoder.output_shape == (None, 512)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backbone", "keras.applications.ResNet51"], "'ResNet51' is not a keras.applications model"),
        (["--backbone", "keras.applications.MobileNetV2", "--width", "0.5"], "--width applies to ResNets"),
        (["--backbone", "convnet", "--backbone-weights", "imagenet"], "--backbone-weights applies to keras.app"),
        (["--backbone", "keras.applications.MobileNetV2", "--backbone-weights", "nowhere.h5"], "names no file"),
    ],
)
@pytest.mark.savedmodel  # under torch, pretrain refuses first: its bundle is a TensorFlow SavedModel
def test_keras_applications_backbone_usage_errors(extra, message, tiny_npz, tmp_path, capsys):
    code, _, err = run_cli(capsys, "pretrain", "simclr", "--data", tiny_npz, "--output", tmp_path / "b", *extra)
    assert code == cli.EXIT_USAGE and message in err
    assert not (tmp_path / "b").exists()


def test_backbone_names_are_checked_when_parsed(tiny_npz, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["pretrain", "simclr", "--data", tiny_npz, "--output", str(tmp_path / "b"), "--backbone", "resnet19"])
    assert exit_info.value.code == cli.EXIT_USAGE
    assert "keras.applications.NAME" in capsys.readouterr().err


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


@pytest.mark.large
@pytest.mark.savedmodel
def test_pretrain_text_methods_ship_their_vocabulary(tiny_text, tmp_path, capsys):
    from keras_ssl import data

    bundle = str(tmp_path / "mlm")
    args = ["--output", bundle, "--epochs", "1", "--max-steps", "2", "--batch-size", "8"]
    assert cli.main(["pretrain", "masked_lm", "--data", tiny_text, *args]) == cli.EXIT_OK
    tokenizer = data.WordPieceTokenizer.load(bundle)  # found in the bundle's assets/keras_ssl/
    encoder = keras_ssl.load(bundle)
    hidden = encoder.predict(tokenizer.encode(["the game was released in japan"], max_length=128), verbose=0)
    assert hidden.shape == (1, 128, 128) and np.isfinite(hidden).all()
    assert "2 per epoch" in capsys.readouterr().out
    assert json.loads((tmp_path / "mlm.run" / "history.json").read_text())["epoch"] == [1]

    bundle = str(tmp_path / "w2v")
    assert cli.main(["pretrain", "word2vec", "--data", tiny_text, "--output", bundle]) == cli.EXIT_OK
    with open(os.path.join(bundle, "assets", "keras_ssl", "vocabulary.txt"), encoding="utf-8") as f:
        vocabulary = f.read().split("\n")
    embedding = keras_ssl.load(bundle)
    assert embedding.output_shape[-1] == 100 and "the" in vocabulary
    assert embedding.get_layer("embedding").input_dim >= len([w for w in vocabulary if w])


@pytest.mark.savedmodel  # under torch, pretrain refuses first: its bundle is a TensorFlow SavedModel
def test_text_methods_refuse_image_options(tiny_text, tmp_path, capsys):
    code, _, err = run_cli(capsys, "pretrain", "word2vec", "--data", tiny_text, "--output", tmp_path / "b", *TINY)
    assert code == cli.EXIT_USAGE and "applies to image methods" in err and not list(tmp_path.iterdir())
