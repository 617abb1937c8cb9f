"""Image folders and TFRecords as resumable input: decoding, the (seed, epoch) order, resuming, bad files."""

import hashlib
import os
import warnings

import keras
import numpy as np
import pytest
from PIL import Image

from keras_ssl import backbones, data, methods

SIZE = 8


def save(path, array_or_image, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    image.save(path, **kwargs)
    return path


def reference(path, size=SIZE, mode="RGB"):
    """What the folder reader should give: PIL's decode, central square, bilinear resize."""
    with Image.open(path) as image:
        image = image.convert(mode)
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
        array = np.asarray(image)
    return array[..., None] if mode == "L" else array


def constant_images(directory, count, size=4):
    """`count` PNGs whose every pixel is their index, so a batch tells which files it holds."""
    for i in range(count):
        save(os.path.join(directory, f"{i // 5}", f"img{i:03d}.png"), np.full((size, size, 3), i, np.uint8))
    return directory


def ids(batches):
    """The image indices in a stream of batches of `constant_images`, shape (batches, batch_size)."""
    return np.stack([np.asarray(b)[:, 0, 0, 0] for b in batches]).astype(int)


def folder_digest(directory):
    digest = hashlib.sha256()
    for root, folders, files in sorted(os.walk(directory)):
        folders.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            stat = os.stat(path)
            digest.update(f"{os.path.relpath(path, directory)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", data.UnreadableImageWarning)  # a test that expects none fails on one
        return fn(*args, **kwargs)


def test_nested_png_jpeg_bmp_gif_files_are_read_like_pil_reads_them(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.linspace(0, 255, 20 * 14 * 3).reshape(20, 14, 3).astype(np.uint8)  # JPEG keeps smooth images
    paths = [
        save(str(tmp_path / "a" / "x.png"), rng.integers(0, 256, (20, 14, 3), dtype=np.uint8)),
        save(str(tmp_path / "a" / "b" / "c" / "y.JPG"), smooth, quality=95),
        save(str(tmp_path / "b" / "z.bmp"), rng.integers(0, 256, (12, 30, 3), dtype=np.uint8)),
        save(str(tmp_path / "b" / "w.gif"), Image.fromarray(smooth).convert("P")),
        save(str(tmp_path / "t.jpeg"), smooth[:9, :9], quality=95),
    ]
    (tmp_path / "notes.txt").write_text("not an image")
    save(str(tmp_path / ".hidden.png"), np.zeros((4, 4, 3), np.uint8))
    assert data.list_image_files(tmp_path) == sorted(paths)
    folder = quiet(data.image_folder, tmp_path, SIZE, batch_size=5, shuffle=False)
    assert (folder.steps_per_epoch, folder.batch_size, folder.input_shape) == (1, 5, (SIZE, SIZE, 3))
    (batch,) = list(folder.dataset())
    assert batch.dtype == np.uint8 and batch.shape == (5, SIZE, SIZE, 3)
    for image, path in zip(np.asarray(batch), folder.files):
        expected = reference(path).astype(int)
        difference = np.abs(image.astype(int) - expected)
        # TensorFlow's antialiased bilinear resize and decoders are not PIL's, byte for byte.
        assert difference.mean() < 2.5 and difference.max() <= 40, (path, difference.mean(), difference.max())


def test_every_epoch_order_depends_on_seed_and_epoch_only_and_a_resume_sees_the_tail(tmp_path):
    constant_images(tmp_path, 14)
    folder = quiet(data.image_folder, tmp_path, 4, batch_size=3, seed=5)
    assert folder.steps_per_epoch == 4  # 14 // 3: two images are left out of each epoch
    full = ids(quiet(folder.fit_input, 0, 0, 3))
    assert full.shape == (12, 3)
    for epoch in range(3):
        seen = full[4 * epoch : 4 * epoch + 4].ravel()
        assert len(set(seen)) == 12  # no image twice in an epoch
        np.testing.assert_array_equal(seen, folder.order(epoch))
    assert not np.array_equal(full[:4], full[4:8])  # reshuffled each epoch
    for start_epoch, first_step in [(0, 1), (1, 0), (1, 3), (2, 2)]:
        tail = ids(folder.fit_input(start_epoch, first_step, 3))
        np.testing.assert_array_equal(tail, full[4 * start_epoch + first_step :])
    again = quiet(data.image_folder, tmp_path, 4, batch_size=3, seed=5)
    np.testing.assert_array_equal(ids(again.fit_input(1, 0, 2)), full[4:8])
    np.testing.assert_array_equal(ids(again.dataset(2)), full[8:])
    other = quiet(data.image_folder, tmp_path, 4, batch_size=3, seed=6)
    assert not np.array_equal(ids(other.fit_input(0, 0, 1)), full[:4])
    in_order = quiet(data.image_folder, tmp_path, 4, batch_size=3, shuffle=False)
    np.testing.assert_array_equal(ids(in_order.fit_input(0, 0, 2)).ravel(), list(range(12)) * 2)


def test_the_seed_comes_from_numpys_global_generator(tmp_path):
    constant_images(tmp_path, 6)
    np.random.seed(3)
    first = quiet(data.image_folder, tmp_path, 4, batch_size=2).seed
    np.random.seed(3)
    assert quiet(data.image_folder, tmp_path, 4, batch_size=2).seed == first


def test_a_resumed_epoch_never_reads_the_files_it_skips(tmp_path):
    constant_images(tmp_path, 10)
    folder = quiet(data.image_folder, tmp_path, 4, batch_size=2, seed=1)
    skipped = folder.order(0)[:4]  # the first two batches of epoch 0
    for index in skipped:
        os.remove(folder.files[index])
    tail = ids(quiet(folder.fit_input, 0, 2, 1))  # would warn about the deleted files if it read them
    np.testing.assert_array_equal(tail.ravel(), folder.order(0)[4:])


def test_unreadable_files_are_named_in_a_warning_and_skipped(tmp_path):
    constant_images(tmp_path, 7)
    good_jpeg = save(str(tmp_path / "photo.jpg"), np.full((16, 16, 3), 9, np.uint8))
    with open(good_jpeg, "rb") as f:
        contents = f.read()
    (tmp_path / "cut.jpg").write_bytes(contents[: len(contents) // 2])  # truncated
    (tmp_path / "junk.png").write_bytes(b"this is not a png")
    (tmp_path / "empty.gif").write_bytes(b"")
    with pytest.warns(data.UnreadableImageWarning, match=r"Skipping 3 of 11 image file\(s\)") as record:
        folder = data.image_folder(tmp_path, 4, batch_size=2, seed=0)
    message = str(record[0].message)
    assert all(name in message for name in ("cut.jpg", "junk.png", "empty.gif")) and "photo.jpg" not in message
    assert folder.num_images == 8 and folder.steps_per_epoch == 4
    assert sorted(os.path.basename(p) for p, _ in folder.skipped) == ["cut.jpg", "empty.gif", "junk.png"]
    assert len(list(quiet(folder.fit_input, 0, 0, 2))) == 8


def test_a_file_that_fails_only_when_decoded_is_named_and_the_batch_count_kept(tmp_path):
    constant_images(tmp_path, 7)
    # JPEG markers at both ends, nothing decodable between: passes the header check, fails in the pipeline.
    (tmp_path / "sneaky.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"x" * 64 + b"\xff\xd9")
    folder = quiet(data.image_folder, tmp_path, 4, batch_size=2, seed=0)
    assert folder.num_images == 8
    with pytest.warns(data.UnreadableImageWarning, match="sneaky.jpg"):
        batches = list(folder.fit_input(0, 0, 2))
    assert len(batches) == 2 * folder.steps_per_epoch and all(b.shape == (2, 4, 4, 3) for b in batches)


def test_grayscale_rgba_palette_and_cmyk_images_become_the_channels_asked_for(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    save(str(tmp_path / "1_gray.png"), Image.fromarray(rgb[..., 0], "L"))
    save(str(tmp_path / "2_gray_alpha.png"), Image.fromarray(rgb[..., :2], "LA"))
    save(str(tmp_path / "3_rgba.png"), Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA"))
    save(str(tmp_path / "4_palette.png"), Image.fromarray(rgb).convert("P"))
    save(str(tmp_path / "5_cmyk.jpg"), Image.new("CMYK", (6, 6), (0, 255, 255, 0)), quality=100)  # red
    smooth = np.add.outer(np.arange(6), np.arange(6)).astype(np.uint8) * 20  # JPEG decoders agree on smooth images
    save(str(tmp_path / "6_gray.jpg"), Image.fromarray(smooth, "L"), quality=100)
    folder = quiet(data.image_folder, tmp_path, 6, batch_size=6, shuffle=False)
    (batch,) = [np.asarray(b) for b in folder.dataset()]
    assert batch.shape == (6, 6, 6, 3)
    np.testing.assert_array_equal(batch[0], np.repeat(rgb[..., :1], 3, axis=-1))
    np.testing.assert_array_equal(batch[1], np.repeat(rgb[..., :1], 3, axis=-1))  # alpha dropped
    np.testing.assert_array_equal(batch[2], rgb)
    np.testing.assert_array_equal(batch[3], reference(folder.files[3], 6))
    assert np.abs(batch[4].astype(int) - [255, 0, 0]).max() <= 3
    np.testing.assert_allclose(batch[5], reference(folder.files[5], 6), atol=3)
    gray = quiet(data.image_folder, tmp_path, 6, batch_size=6, shuffle=False, channels=1)
    (batch,) = [np.asarray(b) for b in gray.dataset()]
    assert batch.shape == (6, 6, 6, 1) and gray.input_shape == (6, 6, 1)
    np.testing.assert_array_equal(batch[0, ..., 0], rgb[..., 0])


def test_images_smaller_than_the_size_are_upscaled(tmp_path):
    small = np.random.default_rng(2).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    path = save(str(tmp_path / "tiny.png"), small)
    folder = quiet(data.image_folder, tmp_path, 16, batch_size=1)
    (batch,) = [np.asarray(b) for b in folder.dataset()]
    assert batch.shape == (1, 16, 16, 3)
    assert np.abs(batch[0].astype(int) - reference(path, 16)).mean() < 2.5


def test_empty_folders_and_folders_without_images_are_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=rf"no image files \(\.bmp, \.gif, \.jpeg, \.jpg, \.png.*{empty}.*no files"):
        data.image_folder(empty, 8)
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"below .*texts. Received: 1 file\(s\) with other extensions"):
        data.image_folder(tmp_path / "texts", 8)
    with pytest.raises(ValueError, match="not a directory"):
        data.image_folder(tmp_path / "missing", 8)
    constant_images(tmp_path / "three", 3)
    with pytest.raises(ValueError, match=r"fewer images than one batch.*3 image\(s\), batch_size=4"):
        data.image_folder(tmp_path / "three", 4, batch_size=4)
    with pytest.raises(ValueError, match="channels"):
        data.image_folder(tmp_path / "three", 4, channels=4)
    with pytest.raises(ValueError, match="image_size"):
        data.image_folder(tmp_path / "three", 0)
    folder = quiet(data.image_folder, tmp_path / "three", 4, batch_size=1)
    with pytest.raises(ValueError, match="first_step"):
        folder.fit_input(0, 3, 1)
    with pytest.raises(ValueError, match="end_epoch"):
        folder.fit_input(2, 0, 1)


def test_tfrecords_give_the_folders_images_and_resume_like_it(tmp_path):
    images = constant_images(tmp_path / "images", 13)
    folder = quiet(data.image_folder, images, 4, batch_size=13, shuffle=False)
    paths = data.write_tfrecords(folder, tmp_path / "records" / "train", shards=3)
    assert [os.path.basename(p) for p in paths] == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    records = quiet(data.tfrecord_images, str(tmp_path / "records" / "train-*.tfrecord"), 4, batch_size=3, seed=2)
    assert records.records_per_file == [5, 4, 4] and records.steps_per_epoch == 4
    full = ids(quiet(records.fit_input, 0, 0, 3))
    for epoch in range(3):
        assert len(set(full[4 * epoch : 4 * epoch + 4].ravel())) == 12
    assert not np.array_equal(full[:4], full[4:8])
    for start_epoch, first_step in [(0, 2), (1, 1), (2, 3)]:
        np.testing.assert_array_equal(
            ids(records.fit_input(start_epoch, first_step, 3)), full[4 * start_epoch + first_step :]
        )
    arrays = np.random.default_rng(0).integers(0, 256, (4, 5, 5, 3), dtype=np.uint8)
    (single,) = data.write_tfrecords(arrays, tmp_path / "arrays")
    (batch,) = quiet(data.tfrecord_images, single, 5, batch_size=4, shuffle=False).dataset()
    np.testing.assert_array_equal(batch, arrays)
    with pytest.raises(FileExistsError, match="overwrite"):
        data.write_tfrecords(arrays, tmp_path / "arrays")


def test_tfrecords_without_the_image_feature_are_refused_naming_file_and_features(tmp_path):
    import tensorflow as tf

    path = str(tmp_path / "labels.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        feature = {
            "jpeg": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"..."])),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[3])),
        }
        writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    with pytest.raises(ValueError, match=r"feature 'image'.*labels.tfrecord.*\['jpeg', 'label'\]"):
        data.tfrecord_images(path, 8)
    with pytest.raises(ValueError, match="'label' to hold encoded image bytes.*int64_list"):
        data.tfrecord_images(path, 8, feature="label")
    with pytest.raises(ValueError, match="no file matches"):
        data.tfrecord_images(str(tmp_path / "none-*.tfrecord"), 8)
    (tmp_path / "cut.tfrecord").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00abcdxyz")
    with pytest.raises(ValueError, match="cut.tfrecord"):
        data.tfrecord_images(str(tmp_path / "cut.tfrecord"), 8)


def test_reading_leaves_the_users_files_untouched(tmp_path):
    images = constant_images(tmp_path / "images", 6)
    (tmp_path / "images" / "bad.jpg").write_bytes(b"\xff\xd8\xff nothing")
    before = folder_digest(images)
    with pytest.warns(data.UnreadableImageWarning):
        folder = data.image_folder(images, 4, batch_size=2, seed=0)
    list(folder.fit_input(0, 1, 2))
    data.write_tfrecords(folder, tmp_path / "out" / "copy")
    assert folder_digest(images) == before


def test_strings_name_folders_tfrecords_or_tfds(tmp_path):
    images = constant_images(tmp_path / "images", 6)
    batches, steps, shape = quiet(data.prepare_pretraining_data, str(images), batch_size=2, image_size=4, seed=0)
    assert isinstance(batches, data.ImageFolder) and data.is_resumable(batches)
    assert (steps, shape, batches.seed) == (3, (4, 4, 3), 0)
    folder = quiet(data.image_folder, images, 4, batch_size=6)
    data.write_tfrecords(folder, tmp_path / "train", shards=2)
    records, steps, _ = data.prepare_pretraining_data(str(tmp_path / "train-*.tfrecord"), batch_size=3, image_size=4)
    assert isinstance(records, data.TFRecordImages) and steps == 2
    with pytest.raises(ValueError, match=r"needs an image size.*image_folder\("):
        data.prepare_pretraining_data(str(images))
    with pytest.raises(ValueError, match="no such directory"):
        data.prepare_pretraining_data(str(tmp_path / "missing"), image_size=4)
    with pytest.raises(ValueError, match="batch size of a folder"):
        data.prepare_pretraining_data(folder, batch_size=3)
    with pytest.raises(ValueError, match="needs at least 8"):
        data.prepare_pretraining_data(folder, min_batch_size=8)
    with pytest.raises(ValueError, match="not on images named by a string"):
        data.prepare_pretraining_data(str(images), input_kind="tokens")


def test_a_method_trains_on_a_folder_and_resumes_in_its_order(tmp_path):
    constant_images(tmp_path, 12, size=8)
    folder = quiet(data.image_folder, tmp_path, 8, batch_size=4, seed=0)
    # An autoencoder compiles fast, and its encoder fixes the size a folder named by a string is read at.
    method = methods.Autoencoder(backbones.ConvNet(filters=(4,), input_shape=(8, 8, 3)))
    history = quiet(method.fit, folder, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    history = quiet(method.fit, folder, initial_epoch=2, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 1
    history = quiet(method.fit, str(tmp_path), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    capped = methods.Autoencoder(backbones.ConvNet(filters=(4,), input_shape=(8, 8, 3)))
    quiet(capped.fit, folder, epochs=1, steps_per_epoch=2, verbose=0)  # 3 batches per epoch, capped at 2
    assert int(keras.ops.convert_to_numpy(capped.optimizer.iterations)) == 2
    with pytest.raises(ValueError, match="steps_per_epoch=5 asks for more batches than an epoch of this input holds"):
        method.fit(folder, epochs=1, steps_per_epoch=5, verbose=0)
