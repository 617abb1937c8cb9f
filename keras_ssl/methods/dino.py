"""DINO (Caron et al., 2021): self-distillation with no labels, multi-crop."""

from keras import ops

from keras_ssl.augment import multicrop_augmenter
from keras_ssl.layers import dino_head
from keras_ssl.layers.ema import copy_as_teacher, ema_update, momentum_schedule
from keras_ssl.losses import dino_loss
from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.registry import register_method


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

    def __init__(self, encoder, augmenter=None, num_prototypes=4096, hidden_dim=2048, bottleneck_dim=256,
                 student_temperature=0.1, teacher_temperature=0.04, center_momentum=0.9, momentum=0.996, **kwargs):
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
        self.head = dino_head(self.hidden_dim, self.bottleneck_dim, self.num_prototypes, name="head")
        self.build_heads(self.feature_dim)

    @property
    def embedding_dim(self):
        return self.bottleneck_dim

    def default_augmenter(self, image_size):
        return multicrop_augmenter(image_size)

    def build_heads(self, feature_dim):
        self.head.build((None, feature_dim))
        self.teacher_encoder = copy_as_teacher(self.encoder, name="teacher_encoder")
        self.teacher_head = copy_as_teacher(self.head, name="teacher_head")
        self.center = self.add_weight(shape=(self.num_prototypes,), initializer="zeros", trainable=False, name="center")

    def _student(self, views, training):
        """Student outputs per view, and the L2-normalised bottleneck they came from."""
        # Views of one size share a forward pass: (k * N, H, W, C) -> (k * N, K).
        x = self.encoder(ops.concatenate(views, axis=0), training=training)
        for layer in self.head.layers[:-1]:
            x = layer(x, training=training)
        out = self.head.layers[-1](x)
        return ops.split(out, len(views), axis=0), x

    def compute_ssl_loss(self, images, training=True):
        views = self.augmenter(images, training=training)
        if len(views) < 2:
            raise ValueError(f"DINO needs at least 2 (global) views. Received: {len(views)}")
        global_views, local_views = views[:2], views[2:]
        student, bottleneck = self._student(global_views, training)
        if local_views:
            student = student + self._student(local_views, training)[0]
        teacher_out = self.teacher_head(self.teacher_encoder(ops.concatenate(global_views, axis=0), training=training), training=training)
        teacher = ops.split(ops.stop_gradient(teacher_out), 2, axis=0)
        loss = dino_loss(student, teacher, self.center, self.student_temperature, self.teacher_temperature)
        if training:
            batch_center = ops.mean(ops.cast(teacher_out, "float32"), axis=0)
            self.center.assign(self.center * self.center_momentum + batch_center * (1.0 - self.center_momentum))
        return loss, {"embedding_std": embedding_std(bottleneck)}

    def after_optimizer_step(self):
        tau = momentum_schedule(self.optimizer.iterations, self.planned_steps or 1, base=self.momentum)
        ema_update(self.teacher_encoder, self.encoder, tau)
        ema_update(self.teacher_head, self.head, tau)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_prototypes=self.num_prototypes, hidden_dim=self.hidden_dim, bottleneck_dim=self.bottleneck_dim,
            student_temperature=self.student_temperature, teacher_temperature=self.teacher_temperature,
            center_momentum=self.center_momentum, momentum=self.momentum,
        )
        return config
