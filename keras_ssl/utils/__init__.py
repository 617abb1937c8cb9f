"""The bottom layer: helpers every other part may use, importing nothing of keras_ssl.

Modules here import only the standard library (and small pure-Python
packages) at import time, so the CLI, the download cache and backup files
can use them without loading a deep-learning framework.
"""
