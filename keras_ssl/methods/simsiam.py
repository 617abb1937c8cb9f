"""SimSiam (Chen & He, 2021): a Siamese network with a predictor and a stop-gradient."""

from keras import ops

from keras_ssl.augment import simclr_augmenter
from keras_ssl.layers import mlp_head
from keras_ssl.losses import negative_cosine_similarity
from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.registry import register_method


@register_method("simsiam")
class SimSiam(Method):
    """Exploring Simple Siamese Representation Learning.

    "Our hypothesis is that SimSiam is an implementation of an
    Expectation-Maximization like algorithm [...] the stop-gradient operation
    is critical." Loss: `D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2`
    with D the negative cosine similarity (Chen & He, 2021, Algorithm 1).

    Args:
        encoder: the backbone to pretrain.
        augmenter: two-view layer; default: the SimCLR recipe (as in the paper).
        projection_dim: projector output (2048 in the paper).
        predictor_dim: the predictor's bottleneck (512 in the paper; default
            projection_dim / 4).
    """

    min_batch_size = 2

    def __init__(self, encoder, augmenter=None, projection_dim=2048, predictor_dim=None, **kwargs):
        super().__init__(encoder, augmenter, **kwargs)
        self.projection_dim = int(projection_dim)
        self.predictor_dim = predictor_dim
        d = self.projection_dim
        # The projector's output layer keeps BatchNorm (no ReLU), as in the paper.
        self.projector = mlp_head([(d, True, "relu"), (d, True, "relu"), (d, True, None)], name="projector")
        self.predictor = mlp_head([(predictor_dim or max(1, d // 4), True, "relu"), (d, False, None)], name="predictor")
        self.build_heads(self.feature_dim)

    def default_augmenter(self, image_size):
        return simclr_augmenter(image_size)

    def build_heads(self, feature_dim):
        self.projector.build((None, feature_dim))
        self.predictor.build((None, self.projection_dim))

    def compute_ssl_loss(self, images, training=True):
        view1, view2 = self.augmenter(images, training=training)
        z = self.projector(self.encoder(ops.concatenate([view1, view2], axis=0), training=training), training=training)
        p = self.predictor(z, training=training)
        z1, z2 = ops.split(z, 2, axis=0)
        p1, p2 = ops.split(p, 2, axis=0)
        loss = 0.5 * negative_cosine_similarity(p1, z2) + 0.5 * negative_cosine_similarity(p2, z1)
        return loss, {"embedding_std": embedding_std(z)}

    @property
    def embedding_dim(self):
        return self.projection_dim

    def get_config(self):
        config = super().get_config()
        config.update(projection_dim=self.projection_dim, predictor_dim=self.predictor_dim)
        return config
