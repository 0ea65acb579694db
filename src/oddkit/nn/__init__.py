"""PyTorch modules only: encoders, decoders and the auto-encoders built from them.

Nothing here imports the rest of oddkit, so a trained module can be reused, inspected or exported
on its own (``detector.model_`` is one of these).
"""

from oddkit.nn.autoencoder import AutoEncoder, ParallelLinear, mlp, mlp_autoencoder
from oddkit.nn.conv import ConvDecoder, ConvEncoder, conv_autoencoder
from oddkit.nn.vae import VariationalAutoEncoder, conv_vae, gaussian_kl, mlp_vae
from oddkit.nn.vq import VectorQuantizer, VQAutoEncoder, conv_vq_autoencoder, mlp_vq_autoencoder

__all__ = [
    "AutoEncoder", "ConvDecoder", "ConvEncoder", "ParallelLinear", "VQAutoEncoder", "VariationalAutoEncoder",
    "VectorQuantizer", "conv_autoencoder", "conv_vae", "conv_vq_autoencoder", "gaussian_kl", "mlp",
    "mlp_autoencoder", "mlp_vae", "mlp_vq_autoencoder",
]
