"""Re-exports a shipped preset's archive from its own weights with the current `keras_ssl.export`; updates its card.

    PYTHONPATH=. .venv/bin/python bench/reexport_preset.py simclr_resnet18_cifar10
    PYTHONPATH=. .venv/bin/python -m keras_ssl.presets.render docs/zoo.md

Used when the bundle format gains something the weights do not change (the
in-model pixel scaling of `keras_ssl.layers.ImageModel`, the named serving
signatures). The preset is loaded from its archive, checked against its card,
exported again into zoo/<name>/<file> as a deterministic archive, and the
card's `weights.sha256` and `weights.size` are rewritten. Before the archive
replaces the old one the script checks, on the re-exported bundle loaded back:
every weight array equal to the old bundle's (bit for bit), the same features
for float inputs as the old model, and the same features for a uint8 batch as
for that batch / 255.
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("preset", help="a preset name whose archive ships in zoo/")
    args = parser.parse_args(argv)

    import keras_ssl
    from keras_ssl.bundle import export, format_signatures, read_metadata
    from keras_ssl.layers import ImageModel
    from keras_ssl.presets import CARD_FILE, get_preset
    from keras_ssl.presets.archive import make_archive

    card = get_preset(args.preset)
    if card.weights is None or not card.directory:
        raise SystemExit(f"{args.preset} has no shipped archive to re-export")
    archive = os.path.join(card.directory, card.weights.file)
    card_path = os.path.join(card.directory, CARD_FILE)
    with open(card_path, encoding="utf-8") as f:
        text = f.read()
    fields = json.loads(text)
    if json.dumps(fields, indent=2, ensure_ascii=False) + "\n" != text:
        raise SystemExit(f"{card_path} is not in the layout this script writes (json indent 2); edit it by hand")

    old = keras_ssl.load(card.name)
    shape = tuple(card.input["shape"])
    x8 = np.random.default_rng(0).integers(0, 256, (8, *shape), dtype="uint8")
    xf = x8.astype("float32") / 255
    expected = old.predict(xf, verbose=0)

    with tempfile.TemporaryDirectory(dir=card.directory) as staging:
        bundle = export(old, os.path.join(staging, "bundle"))
        new = keras_ssl.load(bundle)
        if not isinstance(new, ImageModel):
            raise SystemExit(
                f"expected the re-exported bundle to load as an ImageModel. Received: {type(new).__name__}"
            )
        old_weights, new_weights = old.get_weights(), new.get_weights()
        same = len(old_weights) == len(new_weights) and all(
            a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(old_weights, new_weights)
        )
        if not same:
            raise SystemExit("the re-exported weights differ from the preset's; nothing written")
        float_diff = float(np.abs(new.predict(xf, verbose=0) - expected).max())
        uint8_diff = float(np.abs(new.predict(x8, verbose=0) - expected).max())
        if max(float_diff, uint8_diff) > 1e-5:
            raise SystemExit(f"features differ: float {float_diff}, uint8 {uint8_diff}; nothing written")
        signatures = read_metadata(bundle)["signatures"]
        staged = os.path.join(staging, card.weights.file)
        sha256 = make_archive(bundle, staged)
        os.replace(staged, archive)
    fields["weights"]["sha256"], fields["weights"]["size"] = sha256, os.path.getsize(archive)
    with open(card_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(fields, indent=2, ensure_ascii=False) + "\n")
    print(f"{archive}: sha256 {sha256}, {os.path.getsize(archive)} bytes")
    print(
        f"{len(new_weights)} weight arrays unchanged; features vs the old model: "
        f"float {float_diff:.2e}, uint8 {uint8_diff:.2e}"
    )
    for line in format_signatures(signatures):
        print(f"signature {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
