"""Building blocks shared by the methods: heads, queues, EMA teachers."""

from keras_ssl.layers.ema import copy_as_teacher, ema_update, momentum_schedule
from keras_ssl.layers.heads import L2Normalize, PrototypeLayer, dino_head, mlp_head, simclr_projection_head
from keras_ssl.layers.queue import FeatureQueue

__all__ = ["FeatureQueue", "L2Normalize", "PrototypeLayer", "dino_head", "copy_as_teacher", "ema_update", "mlp_head", "momentum_schedule", "simclr_projection_head"]
