"""DINO (Caron et al., 2021): self-distillation with no labels, multi-crop."""

import keras
from keras import ops

from keras_ssl.augment import multicrop_augmenter
from keras_ssl.layers import PrototypeLayer, dino_projector
from keras_ssl.layers.ema import copy_as_teacher
from keras_ssl.losses import dino_loss
from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.registry import register_method
from keras_ssl.utils import replicas


@register_method("dino")
class DINO(Method):
    """Self-distillation with no labels.

    "We train a student network to match the output of a teacher network
    [...] the teacher is built from past iterations of the student [...]
    collapse is avoided with a centering and sharpening of the momentum
    teacher outputs." (Caron et al., 2021.) The teacher sees the two global
    crops, the student every crop (multi-crop); the centre is an EMA of the
    teacher's batch mean and is saved with the method's weights.

    Args:
        encoder: the backbone; it must accept the local crops' smaller size
            (use `input_shape=(None, None, channels)`).
        augmenter: multi-view layer whose first two views are the global
            crops; default: `multicrop_augmenter` with 4 local crops.
        num_prototypes: output dimension K (65536 on ImageNet; 4096 here).
        hidden_dim, bottleneck_dim: head sizes (2048, 256 in the paper).
        student_temperature, teacher_temperature: 0.1 and 0.04.
        center_momentum: 0.9.
        momentum: initial teacher EMA momentum, rising to 1 (0.996).
    """

    min_batch_size = 1

    def __init__(
        self,
        encoder,
        augmenter=None,
        num_prototypes=4096,
        hidden_dim=2048,
        bottleneck_dim=256,
        student_temperature=0.1,
        teacher_temperature=0.04,
        center_momentum=0.9,
        momentum=0.996,
        **kwargs,
    ):
        super().__init__(encoder, augmenter, **kwargs)
        if teacher_temperature <= 0 or student_temperature <= 0:
            raise ValueError(
                f"Temperatures must be positive. Received: student={student_temperature}, teacher={teacher_temperature}"
            )
        self.num_prototypes = int(num_prototypes)
        self.hidden_dim = int(hidden_dim)
        self.bottleneck_dim = int(bottleneck_dim)
        self.student_temperature = float(student_temperature)
        self.teacher_temperature = float(teacher_temperature)
        self.center_momentum = float(center_momentum)
        self.momentum = float(momentum)
        self.projector = dino_projector(self.hidden_dim, self.bottleneck_dim, name="projector")
        self.prototypes = keras.Sequential([PrototypeLayer(self.num_prototypes)], name="prototypes")
        self.build_heads(self.feature_dim)

    @property
    def embedding_dim(self):
        return self.bottleneck_dim

    def default_augmenter(self, image_size):
        return multicrop_augmenter(image_size)

    def build_heads(self, feature_dim):
        self.projector.build((None, feature_dim))
        self.prototypes.build((None, self.bottleneck_dim))
        self.teacher_encoder = copy_as_teacher(self.encoder, name="teacher_encoder")
        self.teacher_projector = copy_as_teacher(self.projector, name="teacher_projector")
        self.teacher_prototypes = copy_as_teacher(self.prototypes, name="teacher_prototypes")
        self.center = self.add_weight(shape=(self.num_prototypes,), initializer="zeros", trainable=False, name="center")

    def _student(self, views, training):
        """Student outputs per view, and the L2-normalised bottleneck they came from."""
        # Views of one size share a forward pass: (k * N, H, W, C) -> (k * N, K).
        bottleneck = self.projector(self.encoder(ops.concatenate(views, axis=0), training=training), training=training)
        return ops.split(self.prototypes(bottleneck), len(views), axis=0), bottleneck

    def compute_ssl_loss(self, images, training=True):
        views = self.augmenter(images, training=training)
        if len(views) < 2:
            raise ValueError(f"DINO needs at least 2 (global) views. Received: {len(views)}")
        global_views, local_views = views[:2], views[2:]
        student, bottleneck = self._student(global_views, training)
        if local_views:
            student = student + self._student(local_views, training)[0]
        teacher_features = self.teacher_encoder(ops.concatenate(global_views, axis=0), training=training)
        teacher_out = self.teacher_prototypes(self.teacher_projector(teacher_features, training=training))
        teacher = ops.split(ops.stop_gradient(teacher_out), 2, axis=0)
        loss = dino_loss(student, teacher, self.center, self.student_temperature, self.teacher_temperature)
        if training:
            # The centre follows the global batch's mean teacher output (a mean of equal-sized replica means).
            batch_center = replicas.mean(ops.mean(ops.cast(teacher_out, "float32"), axis=0))
            self.center.assign(self.center * self.center_momentum + batch_center * (1.0 - self.center_momentum))
        return loss, {"embedding_std": embedding_std(bottleneck)}

    @property
    def momentum_pairs(self):
        return (
            (self.encoder, self.teacher_encoder),
            (self.projector, self.teacher_projector),
            (self.prototypes, self.teacher_prototypes),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            num_prototypes=self.num_prototypes,
            hidden_dim=self.hidden_dim,
            bottleneck_dim=self.bottleneck_dim,
            student_temperature=self.student_temperature,
            teacher_temperature=self.teacher_temperature,
            center_momentum=self.center_momentum,
            momentum=self.momentum,
        )
        return config
