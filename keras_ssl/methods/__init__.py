"""Self-supervised methods: keras.Model subclasses trained with `fit`."""

from keras_ssl.methods.autoencoder import Autoencoder, DenoisingAutoencoder, ReconstructionMethod, VariationalAutoencoder
from keras_ssl.methods.byol import BYOL
from keras_ssl.methods.deepcluster import DeepCluster
from keras_ssl.methods.dino import DINO
from keras_ssl.methods.mae import MAE
from keras_ssl.methods.masked_lm import MaskedLM
from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.moco import MoCo
from keras_ssl.methods.redundancy import BarlowTwins, VICReg
from keras_ssl.methods.registry import get_method, list_methods, register_method
from keras_ssl.methods.simclr import SimCLR
from keras_ssl.methods.simsiam import SimSiam
from keras_ssl.methods.word2vec import Word2Vec

__all__ = [
    "Autoencoder", "BYOL", "BarlowTwins", "DINO", "DeepCluster", "DenoisingAutoencoder", "MAE", "MaskedLM", "Method", "MoCo",
    "ReconstructionMethod", "SimCLR", "SimSiam", "VICReg", "VariationalAutoencoder", "Word2Vec",
    "embedding_std", "get_method", "list_methods", "register_method",
]
