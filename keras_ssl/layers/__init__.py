"""Building blocks shared by the methods: heads, queues, EMA."""

from keras_ssl.layers.heads import mlp_head, simclr_projection_head

__all__ = ["mlp_head", "simclr_projection_head"]
