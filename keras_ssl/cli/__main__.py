"""`python -m keras_ssl.cli`: the same as the `keras-ssl` command."""

import sys

from keras_ssl.cli import main

sys.exit(main())
