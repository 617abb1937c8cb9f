"""DeepCluster (Caron et al., 2018): k-means pseudo-labels, re-clustered every epoch."""

import keras
import numpy as np
from keras import ops

from keras_ssl.augment import ImageAugmenter, MultiViewAugmenter
from keras_ssl.data import check_images
from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.registry import register_method
from keras_ssl.trainers.inference import extract_features
from keras_ssl.utils import replicas


def kmeans(points, k, iterations=20, seed=0, init=None):
    """Lloyd's k-means with DeepCluster's fix for empty clusters.

    "When a cluster becomes empty, we randomly select a non-empty cluster and
    use its centroid with a small random perturbation as the new centroid for
    the empty cluster. We then reassign the points belonging to the non-empty
    cluster to the two resulting clusters." (Caron et al., 2018, sec. 3.3.)
    Here the largest cluster is the one split.

    Returns:
        `(centroids (k, D), assignments (N,), reinitialised)`, the last being
        how many empty clusters were re-initialised.
    """
    points = np.asarray(points, dtype="float64")
    n = len(points)
    if n < k:
        raise ValueError(f"k-means needs at least k={k} points. Received: {n} points")
    rng = np.random.default_rng(seed)
    centroids = points[rng.choice(n, k, replace=False)].copy() if init is None else np.array(init, dtype="float64")
    reinitialised = 0

    def assign(c):
        distances = (points**2).sum(1)[:, None] - 2.0 * points @ c.T + (c**2).sum(1)[None, :]
        return distances.argmin(axis=1)

    for _ in range(iterations):
        labels = assign(centroids)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, points)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None]
        for empty in np.flatnonzero(~nonempty):
            largest = int(np.argmax(counts))
            noise = 1e-4 * (np.abs(centroids[largest]) + 1e-8) * rng.standard_normal(centroids.shape[1])
            centroids[empty] = centroids[largest] + noise
            centroids[largest] = centroids[largest] - noise
            counts[empty] = counts[largest] // 2
            counts[largest] -= counts[empty]
            reinitialised += 1
    return centroids, assign(centroids), reinitialised


def pca_whiten(features, dim):
    """PCA to `dim` components, whitened, then L2-normalised rows (DeepCluster's preprocessing)."""
    x = features - features.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    dim = min(dim, vt.shape[0])
    reduced = x @ vt[:dim].T / (s[:dim] / np.sqrt(max(1, len(x) - 1)) + 1e-5)
    return reduced / np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)


@register_method("deepcluster")
class DeepCluster(Method):
    """Deep Clustering for Unsupervised Learning of Visual Features.

    "DeepCluster iteratively groups the features with a standard clustering
    algorithm, k-means, and uses the subsequent assignments as supervision to
    update the weights of the network." (Caron et al., 2018.) At the start of
    every epoch the training images' features are PCA-whitened and clustered;
    a linear classifier, re-initialised each epoch since cluster ids change,
    learns the assignments with the loss weighted inversely to cluster size
    (the paper samples images uniformly over clusters instead).

    `fit` takes an in-memory image array (the clustering needs every image's
    features each epoch); the pseudo-labels live in a variable, one per image,
    so they are saved and restored with the rest of the training state.

    Args:
        encoder: the backbone to pretrain.
        augmenter: one-view layer; default: random resized crop + flip.
        num_clusters: k (10 x the number of classes works well; 10000 on ImageNet).
        pca_dim: PCA dimension before k-means (256 in the paper).
        kmeans_iterations: Lloyd iterations per epoch.
    """

    min_batch_size = 1
    batch_row_indices = True  # batches are (images, rows): each row's pseudo-label is looked up in the step

    def __init__(self, encoder, augmenter=None, num_clusters=100, pca_dim=256, kmeans_iterations=20, **kwargs):
        super().__init__(encoder, augmenter, **kwargs)
        if num_clusters < 2:
            raise ValueError(f"`num_clusters` must be at least 2. Received: num_clusters={num_clusters}")
        self.num_clusters = int(num_clusters)
        self.pca_dim = int(pca_dim)
        self.kmeans_iterations = int(kmeans_iterations)
        self.classifier = keras.layers.Dense(self.num_clusters, name="classifier")
        self.pseudo_labels = None  # one per training image, created by the first fit
        self.build_heads(self.feature_dim)

    def default_augmenter(self, image_size):
        view = ImageAugmenter(
            crop_scale=(0.08, 1.0), jitter_strength=0.0, grayscale_probability=0.0, name="deepcluster_view"
        )
        return MultiViewAugmenter([view], name="deepcluster_augmenter")

    def build_heads(self, feature_dim):
        self.classifier.build((None, feature_dim))
        self.cluster_weights = self.add_weight(
            shape=(self.num_clusters,), initializer="ones", trainable=False, name="cluster_weights"
        )

    def check_inputs(self, x):
        """DeepCluster clusters every training image each epoch: it needs them all in memory."""
        if x is None or hasattr(x, "element_spec") or isinstance(x, (str, keras.utils.PyDataset)):
            raise ValueError(
                "DeepCluster clusters every training image each epoch, so `fit` needs an in-memory image array. "
                f"Received: {type(x).__name__}"
            )
        images = check_images(x[0] if isinstance(x, (tuple, list)) else x)
        if len(images) < self.num_clusters:
            raise ValueError(
                f"Need at least num_clusters={self.num_clusters} images to cluster. Received: {len(images)}"
            )
        if self.pseudo_labels is None:
            # Its size is the dataset's, known only now; Keras locks a built layer's state, so unlock it
            # for this one variable (as Keras's own layers do when they add quantisation variables).
            was_locked = self._tracker.locked
            self._tracker.unlock()
            try:
                with replicas.scope(self):
                    self.pseudo_labels = self.add_weight(
                        shape=(len(images),), dtype="int32", initializer="zeros", trainable=False, name="pseudo_labels"
                    )
            finally:
                if was_locked:
                    self._tracker.lock()
        elif self.pseudo_labels.shape[0] != len(images):
            raise ValueError(
                f"This DeepCluster keeps one pseudo-label per training image and was fitted on "
                f"{self.pseudo_labels.shape[0]} images; create a new DeepCluster for another dataset. "
                f"Received: {len(images)} images"
            )
        return images

    def begin_epoch(self, epoch, data):
        self.recluster(data.images, seed=epoch)

    def unpack_batch(self, data):
        images, rows = data  # batches carry the array rows they came from (batch_row_indices)
        return images, rows

    def compute_ssl_loss(self, batch, training=True):
        images, rows = batch
        pseudo_labels = ops.take(self.pseudo_labels, ops.cast(rows, "int32"))
        (view,) = self.augmenter(images, training=training)
        features = self.encoder(view, training=training)
        logits = ops.cast(self.classifier(features), "float32")
        losses = keras.losses.sparse_categorical_crossentropy(pseudo_labels, logits, from_logits=True)
        weights = ops.take(self.cluster_weights, pseudo_labels)
        # A weighted mean over the global batch: the normaliser must see every replica's weights.
        losses, weights = replicas.gather(losses), replicas.gather(weights)
        return ops.sum(losses * weights) / ops.sum(weights), {"embedding_std": embedding_std(features)}

    def recluster(self, images, seed=0):
        """Clusters the images' features; sets the pseudo-labels and class weights and returns the labels."""
        features = pca_whiten(extract_features(self.encoder, images), self.pca_dim)
        _, labels, self.last_reinitialised = kmeans(features, self.num_clusters, self.kmeans_iterations, seed=seed)
        counts = np.bincount(labels, minlength=self.num_clusters).astype("float32")
        self.cluster_weights.assign(
            np.where(counts > 0, len(labels) / (self.num_clusters * np.maximum(counts, 1)), 0.0)
        )
        # Cluster ids are arbitrary each epoch: start the classifier afresh.
        kernel, bias = self.classifier.kernel, self.classifier.bias
        kernel.assign(keras.initializers.GlorotUniform(seed=seed)(kernel.shape))
        bias.assign(np.zeros(bias.shape, "float32"))
        if self.pseudo_labels is not None and self.pseudo_labels.shape[0] == len(labels):
            self.pseudo_labels.assign(labels.astype("int32"))
        return labels.astype("int32")

    def get_config(self):
        config = super().get_config()
        config.update(num_clusters=self.num_clusters, pca_dim=self.pca_dim, kmeans_iterations=self.kmeans_iterations)
        return config
