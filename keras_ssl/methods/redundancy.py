"""Barlow Twins and VICReg: two views, a wide projector, a loss on batch statistics."""

from keras import ops

from keras_ssl.augment import byol_augmenter
from keras_ssl.layers import mlp_head
from keras_ssl.losses import barlow_twins, vicreg
from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.registry import register_method
from keras_ssl.utils import replicas


class _TwoViewProjection(Method):
    """Shared shape of both methods: two views -> encoder -> 3-layer projector -> loss(z1, z2)."""

    min_batch_size = 2

    def __init__(self, encoder, augmenter=None, projection_dim=2048, hidden_dim=2048, **kwargs):
        super().__init__(encoder, augmenter, **kwargs)
        self.projection_dim = int(projection_dim)
        self.hidden_dim = int(hidden_dim)
        h = self.hidden_dim
        self.projector = mlp_head(
            [(h, True, "relu"), (h, True, "relu"), (self.projection_dim, False, None)], name="projector"
        )
        self.build_heads(self.feature_dim)

    def default_augmenter(self, image_size):
        return byol_augmenter(image_size)

    def build_heads(self, feature_dim):
        self.projector.build((None, feature_dim))

    def pair_loss(self, z1, z2):
        raise NotImplementedError

    def compute_ssl_loss(self, images, training=True):
        view1, view2 = self.augmenter(images, training=training)
        # Each branch is projected separately: the losses standardise per branch.
        z1 = self.projector(self.encoder(view1, training=training), training=training)
        z2 = self.projector(self.encoder(view2, training=training), training=training)
        loss = self.pair_loss(replicas.gather(z1), replicas.gather(z2))  # statistics over the global batch
        return loss, {"embedding_std": embedding_std(ops.concatenate([z1, z2], axis=0))}

    @property
    def embedding_dim(self):
        return self.projection_dim

    def get_config(self):
        config = super().get_config()
        config.update(projection_dim=self.projection_dim, hidden_dim=self.hidden_dim)
        return config


@register_method("barlow_twins")
class BarlowTwins(_TwoViewProjection):
    """Barlow Twins (Zbontar et al., 2021).

    "The objective function [...] measures the cross-correlation matrix
    between the embeddings of two identical networks fed with distorted
    versions of a batch of samples, and tries to make this matrix close to the
    identity." See `keras_ssl.losses.barlow_twins`. The paper's projector is
    8192-8192-8192; the default here (2048) is lightly's CIFAR setting.

    Args:
        lambda_: weight of the off-diagonal (redundancy) term, 0.005.
    """

    def __init__(self, encoder, augmenter=None, projection_dim=2048, hidden_dim=2048, lambda_=0.005, **kwargs):
        super().__init__(encoder, augmenter, projection_dim, hidden_dim, **kwargs)
        self.lambda_ = float(lambda_)

    def pair_loss(self, z1, z2):
        return barlow_twins(z1, z2, lambda_=self.lambda_)

    def get_config(self):
        return {**super().get_config(), "lambda_": self.lambda_}


@register_method("vicreg")
class VICReg(_TwoViewProjection):
    """VICReg (Bardes et al., 2022): Variance-Invariance-Covariance Regularization.

    "VICReg explicitly avoids the collapse problem with a simple
    regularization term on the variance of the embeddings along each
    dimension individually." See `keras_ssl.losses.vicreg` (weights 25, 25, 1).
    """

    def __init__(
        self,
        encoder,
        augmenter=None,
        projection_dim=2048,
        hidden_dim=2048,
        invariance_weight=25.0,
        variance_weight=25.0,
        covariance_weight=1.0,
        **kwargs,
    ):
        super().__init__(encoder, augmenter, projection_dim, hidden_dim, **kwargs)
        self.invariance_weight = float(invariance_weight)
        self.variance_weight = float(variance_weight)
        self.covariance_weight = float(covariance_weight)

    def pair_loss(self, z1, z2):
        return vicreg(z1, z2, self.invariance_weight, self.variance_weight, self.covariance_weight)

    def get_config(self):
        return {
            **super().get_config(),
            "invariance_weight": self.invariance_weight,
            "variance_weight": self.variance_weight,
            "covariance_weight": self.covariance_weight,
        }
