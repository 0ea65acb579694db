"""PyTorch modules only: encoders, decoders and the auto-encoders built from them.

Nothing here imports the rest of oddkit, so a trained module can be reused, inspected or exported
on its own (``detector.model_`` is one of these).
"""

from oddkit.nn.autoencoder import AutoEncoder, ParallelLinear, mlp, mlp_autoencoder

__all__ = ["AutoEncoder", "ParallelLinear", "mlp", "mlp_autoencoder"]
