"""BYOL (Grill et al., 2020): predict a momentum target's projection, no negatives."""

from keras import ops

from keras_ssl.augment import byol_augmenter
from keras_ssl.layers import mlp_head
from keras_ssl.layers.ema import copy_as_teacher
from keras_ssl.losses import negative_cosine_similarity
from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.registry import register_method


@register_method("byol")
class BYOL(Method):
    """Bootstrap Your Own Latent.

    "BYOL relies on two neural networks, referred to as online and target
    networks [...] we train the online network to predict the target network
    representation of the same image under a different augmented view [...]
    we update the target network with a slow-moving average of the online
    network." (Grill et al., 2020.) The loss is the symmetrised
    `2 - 2 cos(q_online(v), z_target(v'))`, averaged over the two directions;
    the target's momentum follows a cosine from `momentum` to 1 over the run.

    Args:
        encoder: the backbone to pretrain.
        augmenter: two-view layer; default: BYOL's asymmetric recipe.
        projection_dim, hidden_dim: projector/predictor sizes (paper: 256,
            4096; default hidden: twice the encoder's feature size).
        momentum: the target's initial EMA momentum (0.996 in the paper).
    """

    min_batch_size = 2

    def __init__(self, encoder, augmenter=None, projection_dim=256, hidden_dim=None, momentum=0.996, **kwargs):
        super().__init__(encoder, augmenter, **kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1]. Received: momentum={momentum}")
        self.projection_dim = int(projection_dim)
        self.hidden_dim = hidden_dim
        self.momentum = float(momentum)
        hidden = hidden_dim or 2 * self.feature_dim
        self.projector = mlp_head([(hidden, True, "relu"), (self.projection_dim, False, None)], name="projector")
        self.predictor = mlp_head([(hidden, True, "relu"), (self.projection_dim, False, None)], name="predictor")
        self.build_heads(self.feature_dim)

    def default_augmenter(self, image_size):
        return byol_augmenter(image_size)

    def build_heads(self, feature_dim):
        self.projector.build((None, feature_dim))
        self.predictor.build((None, self.projection_dim))
        self.target_encoder = copy_as_teacher(self.encoder, name="target_encoder")
        self.target_projector = copy_as_teacher(self.projector, name="target_projector")

    def compute_ssl_loss(self, images, training=True):
        view1, view2 = self.augmenter(images, training=training)
        both = ops.concatenate([view1, view2], axis=0)  # (2N, H, W, C)
        z = self.projector(self.encoder(both, training=training), training=training)
        p1, p2 = ops.split(self.predictor(z, training=training), 2, axis=0)
        target = self.target_projector(self.target_encoder(both, training=training), training=training)
        t1, t2 = ops.split(ops.stop_gradient(target), 2, axis=0)
        loss = 2.0 + negative_cosine_similarity(p1, t2) + negative_cosine_similarity(p2, t1)
        return loss, {"embedding_std": embedding_std(z)}

    @property
    def momentum_pairs(self):
        return ((self.encoder, self.target_encoder), (self.projector, self.target_projector))

    @property
    def embedding_dim(self):
        return self.projection_dim

    def get_config(self):
        config = super().get_config()
        config.update(projection_dim=self.projection_dim, hidden_dim=self.hidden_dim, momentum=self.momentum)
        return config
