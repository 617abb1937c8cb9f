"""SimCLR (Chen et al., 2020): contrast two augmented views of each image."""

from keras import ops

from keras_ssl.augment import simclr_augmenter
from keras_ssl.layers import simclr_projection_head
from keras_ssl.losses import nt_xent
from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.registry import register_method
from keras_ssl.utils import replicas


@register_method("simclr")
class SimCLR(Method):
    """ "A simple framework for contrastive learning of visual representations."

    "Two separate data augmentation operators are sampled from the same family
    of augmentations and applied to each data example to obtain two correlated
    views. A base encoder network f(.) and a projection head g(.) are trained
    to maximize agreement using a contrastive loss." (Chen et al., 2020.)

    Args:
        encoder: a backbone mapping images in [0, 1] to feature vectors.
        augmenter: a layer returning two views of a batch; default: the paper's
            recipe for the input size (`keras_ssl.augment.simclr_augmenter`).
        projection_dim: output size of the projection head g.
        hidden_dim: hidden size of g; default: the encoder's feature size.
        temperature: NT-Xent temperature (0.5 is the paper's CIFAR-10 value).
    """

    min_batch_size = 2

    def __init__(self, encoder, augmenter=None, projection_dim=128, hidden_dim=None, temperature=0.5, **kwargs):
        super().__init__(encoder, augmenter, **kwargs)
        if temperature <= 0:
            raise ValueError(f"`temperature` must be positive. Received: temperature={temperature}")
        self.projection_dim = int(projection_dim)
        self.hidden_dim = hidden_dim
        self.temperature = float(temperature)
        self.projector = simclr_projection_head(hidden_dim or self.feature_dim, self.projection_dim)
        self.build_heads(self.feature_dim)

    def default_augmenter(self, image_size):
        return simclr_augmenter(image_size)

    def build_heads(self, feature_dim):
        self.projector.build((None, feature_dim))

    def compute_ssl_loss(self, images, training=True):
        view1, view2 = self.augmenter(images, training=training)
        # One pass over both views: (2N, H, W, C) -> (2N, projection_dim).
        z = self.projector(self.encoder(ops.concatenate([view1, view2], axis=0), training=training), training=training)
        # Negatives span the global batch: every replica's projections (Chen et al.'s TPU implementation).
        z1, z2 = (replicas.gather(half) for half in ops.split(z, 2, axis=0))
        return nt_xent(z1, z2, self.temperature), {"embedding_std": embedding_std(z)}

    @property
    def embedding_dim(self):
        return self.projection_dim

    def get_config(self):
        config = super().get_config()
        config.update(projection_dim=self.projection_dim, hidden_dim=self.hidden_dim, temperature=self.temperature)
        return config
