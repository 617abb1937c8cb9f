"""MoCo v2 (queue of negatives) and MoCo v3 (in-batch negatives, predictor)."""

from keras import ops

from keras_ssl.augment import moco_augmenter
from keras_ssl.layers import mlp_head
from keras_ssl.layers.ema import copy_as_teacher
from keras_ssl.layers.queue import FeatureQueue
from keras_ssl.losses import info_nce
from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.registry import register_method
from keras_ssl.utils import replicas


@register_method("moco")
class MoCo(Method):
    """Momentum Contrast (He et al., 2020; Chen et al., 2020b; Chen et al., 2021).

    "We maintain the dictionary as a queue of data samples: the encoded
    representations of the current mini-batch are enqueued, and the oldest
    are dequeued [...] the key encoder is a momentum-based moving average of
    the query encoder." (He et al., 2020.)

    version=2: MLP projector, key encoder updated with `momentum`, InfoNCE of
    each query against its key and the `queue_size` queued negatives.
    version=3: no queue; BatchNorm projector plus a predictor on the query
    side, symmetric InfoNCE with in-batch negatives scaled by 2T as in the
    paper, momentum rising to 1 on a cosine schedule.

    Args:
        encoder: the backbone to pretrain.
        augmenter: two-view layer; default: MoCo v2's recipe.
        projection_dim, hidden_dim: projector sizes (128 / feature size for v2;
            256 / 4096 in v3).
        temperature: 0.2 (v2) or 0.2 (v3 ResNet).
        queue_size: number of queued negatives (v2 only; 65536 on ImageNet,
            4096 suits CIFAR-10).
        momentum: EMA momentum of the key encoder (0.999 in MoCo v2; 0.99 on
            CIFAR-10).
        version: 2 or 3.
    """

    min_batch_size = 2

    def __init__(
        self,
        encoder,
        augmenter=None,
        projection_dim=128,
        hidden_dim=None,
        temperature=0.2,
        queue_size=4096,
        momentum=0.99,
        version=2,
        **kwargs,
    ):
        super().__init__(encoder, augmenter, **kwargs)
        if version not in (2, 3):
            raise ValueError(f"`version` must be 2 or 3. Received: version={version!r}")
        if temperature <= 0:
            raise ValueError(f"`temperature` must be positive. Received: temperature={temperature}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1]. Received: momentum={momentum}")
        self.projection_dim = int(projection_dim)
        self.hidden_dim = hidden_dim
        self.temperature = float(temperature)
        self.queue_size = int(queue_size)
        self.momentum = float(momentum)
        self.version = version
        # v2 keeps the key encoder's momentum fixed; v3 raises it to 1 on a cosine.
        self.momentum_schedule = "constant" if version == 2 else "cosine"
        hidden = hidden_dim or self.feature_dim
        if version == 2:
            self.projector = mlp_head([(hidden, False, "relu"), (self.projection_dim, False, None)], name="projector")
            self.predictor = None
        else:
            self.projector = mlp_head(
                [(hidden, True, "relu"), (hidden, True, "relu"), (self.projection_dim, True, None)], name="projector"
            )
            self.predictor = mlp_head([(hidden, True, "relu"), (self.projection_dim, False, None)], name="predictor")
        self.build_heads(self.feature_dim)

    def default_augmenter(self, image_size):
        return moco_augmenter(image_size)

    def build_heads(self, feature_dim):
        self.projector.build((None, feature_dim))
        if self.predictor is not None:
            self.predictor.build((None, self.projection_dim))
        self.key_encoder = copy_as_teacher(self.encoder, name="key_encoder")
        self.key_projector = copy_as_teacher(self.projector, name="key_projector")
        self.queue = FeatureQueue(self.queue_size, self.projection_dim, name="queue") if self.version == 2 else None

    def _keys(self, views, training):
        return ops.stop_gradient(self.key_projector(self.key_encoder(views, training=training), training=training))

    def compute_ssl_loss(self, images, training=True):
        view1, view2 = self.augmenter(images, training=training)
        if self.version == 2:
            q = self.projector(self.encoder(view1, training=training), training=training)
            k = self._keys(view2, training)
            # Each query against its key and the queue: a per-query loss, so each replica averages its own queries.
            loss = info_nce(q, k, self.queue.keys, temperature=self.temperature)
            if training:
                # After the loss read the queue: this batch's keys are negatives from the next step on. Every
                # replica pushes the whole global batch of keys, so all replicas hold the same queue.
                self.queue.push(replicas.gather(k))
            return loss, {"embedding_std": embedding_std(q)}
        both = ops.concatenate([view1, view2], axis=0)
        z = self.projector(self.encoder(both, training=training), training=training)
        # In-batch negatives span the global batch: every replica's queries and keys.
        q1, q2 = (replicas.gather(q) for q in ops.split(self.predictor(z, training=training), 2, axis=0))
        k1, k2 = (replicas.gather(k) for k in ops.split(self._keys(both, training), 2, axis=0))
        scale = 2.0 * self.temperature
        loss = scale * (info_nce(q1, k2, temperature=self.temperature) + info_nce(q2, k1, temperature=self.temperature))
        return loss, {"embedding_std": embedding_std(z)}

    @property
    def momentum_pairs(self):
        return ((self.encoder, self.key_encoder), (self.projector, self.key_projector))

    @property
    def embedding_dim(self):
        return self.projection_dim

    def get_config(self):
        config = super().get_config()
        config.update(
            projection_dim=self.projection_dim,
            hidden_dim=self.hidden_dim,
            temperature=self.temperature,
            queue_size=self.queue_size,
            momentum=self.momentum,
            version=self.version,
        )
        return config
