"""The bottom layer: helpers every other part may use, importing nothing of keras_ssl.

`files`, `strict_json` and `bundle_layout` import only the standard library
(and `filelock`), so the CLI, the download cache and backups use them without
loading a deep-learning framework; `replicas` holds the cross-replica helpers
that keep a method's global-batch semantics under a distribution strategy.
"""
