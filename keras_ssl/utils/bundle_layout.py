"""File names inside an export bundle.

The bundle is written by `keras_ssl.export`; readers lower in the layer order
(the tokenizer, which finds its `tokenizer.json` in a bundle) need the same
names, so they live here, below both.
"""

import os

ASSETS = os.path.join("assets", "keras_ssl")  # the Keras half of the bundle, beside the SavedModel
CONFIG, WEIGHTS, METADATA = "config.json", "model.weights.h5", "metadata.json"
TOKENIZER_FILE = "tokenizer.json"  # a text bundle's WordPiece tokenizer
VOCABULARY_FILE = "vocabulary.txt"  # a Word2Vec bundle's words, one per line (word i is id i + 2)
