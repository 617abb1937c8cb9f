"""Puts a trained bundle behind a preset card: the archive beside the card, its sha256 and size in it.

    python -m keras_ssl.presets.publish BUNDLE_DIR CARD_DIR [--metrics results.json] [--notes "..."]

This is how the shipped zoo is made, and how a private zoo (a folder named by
KERAS_SSL_ZOO_PATH) gets its weights. The archive is written with
`make_archive` (the same files always give the same bytes) as
`<card name>.tar.gz` in CARD_DIR; preset.json gets `weights` (file, sha256,
size), the metrics given (merged over the card's) and the notes; the new card
is parsed before it replaces the old one, so a bad edit never leaves a broken
card. Regenerate docs/zoo.md afterwards (`make zoo-docs`).
"""

import argparse
import json
import os

from keras_ssl.presets.archive import make_archive
from keras_ssl.presets.cards import parse_card
from keras_ssl.utils.files import atomic_write

CARD_FILE = "preset.json"


def publish(bundle_dir, card_dir, metrics=None, notes=None):
    """Packs `bundle_dir` into `card_dir`, records its sha256/size (and `metrics`, `notes`) in the card; returns it."""
    from keras_ssl.bundle import read_metadata

    card_path = os.path.join(card_dir, CARD_FILE)
    with open(card_path, encoding="utf-8") as f:
        card = json.load(f)
    read_metadata(bundle_dir)  # a keras_ssl bundle, or a clear error before anything is written
    # Checked before the archive is written: a refused edit must not replace the archive the card's sha256 names.
    bad = {k: v for k, v in (metrics or {}).items() if isinstance(v, bool) or not isinstance(v, (int, float))}
    if bad:
        raise ValueError(f"Metrics must be numbers. Received: {bad}")
    archive = os.path.join(card_dir, f"{card['name']}.tar.gz")
    sha256 = make_archive(bundle_dir, archive)
    card["weights"] = {
        "file": os.path.basename(archive),
        "sha256": sha256,
        "size": os.path.getsize(archive),
        "urls": [],
    }
    if metrics:
        card["metrics"] = {**card.get("metrics", {}), **metrics}
    if notes is not None:
        card["notes"] = notes
    text = json.dumps(card, indent=2, ensure_ascii=False) + "\n"
    published = parse_card(text, card_path, card_dir)
    mode = os.stat(card_path).st_mode & 0o777
    with atomic_write(card_path, "w") as f:
        f.write(text)
    os.chmod(card_path, mode)  # the temporary file's 0600 would hide the card from other users of an installed zoo
    return published


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="the bundle directory keras-ssl pretrain (or keras_ssl.export) wrote")
    parser.add_argument("card_dir", help="the folder holding the card's preset.json")
    parser.add_argument("--metrics", help="a JSON file of {metric name: number} to record in the card")
    parser.add_argument("--notes", help="the card's notes: how it was trained and measured, what it is good for")
    args = parser.parse_args(argv)
    metrics = None
    if args.metrics:
        with open(args.metrics, encoding="utf-8") as f:
            metrics = json.load(f)
    card = publish(args.bundle, args.card_dir, metrics, args.notes)
    print(f"{card.name}: {card.weights.file} ({card.weights.size:,} bytes, sha256 {card.weights.sha256})")


if __name__ == "__main__":
    main()
