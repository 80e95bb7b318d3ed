"""The Vision Transformer's layers for Keras: patches, a position embedding and the pre-norm
encoder block, for :mod:`harness.api.keras_models` (and so for every plugin that trains through
Keras).

As there, nothing imports Keras at module level: the layer classes are made on first use.
The encoder is Keras's own ``MultiHeadAttention``, ``LayerNormalization`` and ``Dense`` layers
composed as the task's ``transformer_encoder`` defines it; its arrays are found by their
variable paths, whose shapes are already the harness's (Keras's) layout.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from harness.api.adapter import UnsupportedSpec

if TYPE_CHECKING:
    from harness.workload.tasks import Patches, TransformerEncoder

#: each of the encoder's arrays (harness name) and the end of its Keras variable path
ENCODER_PATHS = {
    "norm1_gamma": "norm1/gamma",
    "norm1_beta": "norm1/beta",
    "query_kernel": "attention/query/kernel",
    "query_bias": "attention/query/bias",
    "key_kernel": "attention/key/kernel",
    "key_bias": "attention/key/bias",
    "value_kernel": "attention/value/kernel",
    "value_bias": "attention/value/bias",
    "output_kernel": "attention/attention_output/kernel",
    "output_bias": "attention/attention_output/bias",
    "norm2_gamma": "norm2/gamma",
    "norm2_beta": "norm2/beta",
    "mlp_kernel": "mlp/kernel",
    "mlp_bias": "mlp/bias",
    "mlp_output_kernel": "mlp_output/kernel",
    "mlp_output_bias": "mlp_output/bias",
}


def patches(spec: Patches) -> Any:
    return _patches_class()(spec.size)


def position_embedding() -> Any:
    return _position_embedding_class()()


def transformer_encoder(spec: TransformerEncoder) -> Any:
    return _encoder_class()(spec)


def exact_gelu(x):
    """GELU as the task defines it: ``x * Phi(x)`` with erf, not the tanh approximation."""
    import keras

    return keras.activations.gelu(x, approximate=False)


@functools.cache
def _patches_class() -> type:
    import keras
    from keras import ops

    class Patches(keras.layers.Layer):
        """(h, w, c) -> (h/p * w/p, p * p * c): row-major tokens, (row, column, channel) inside."""

        def __init__(self, size: int, **kwargs) -> None:
            super().__init__(**kwargs)
            self.size = size

        def call(self, x):
            _, h, w, c = x.shape
            p = self.size
            grid = ops.reshape(x, (-1, h // p, p, w // p, p, c))
            grid = ops.transpose(grid, (0, 1, 3, 2, 4, 5))
            return ops.reshape(grid, (-1, (h // p) * (w // p), p * p * c))

    return Patches


@functools.cache
def _position_embedding_class() -> type:
    import keras

    class PositionEmbedding(keras.layers.Layer):
        """Adds a learned (steps, features) array."""

        def build(self, input_shape):
            self.embedding = self.add_weight(
                shape=tuple(input_shape[1:]), initializer="zeros", name="embedding"
            )

        def call(self, x):
            return x + self.embedding

    return PositionEmbedding


@functools.cache
def _encoder_class() -> type:
    import keras

    class TransformerEncoder(keras.layers.Layer):
        """``x + Dropout(MHA(LN1(x)))``, then ``x + Dropout(MLP(LN2(x)))`` (pre-norm); with the
        spec's ``causal``, the attention masks out later steps (a GPT block)."""

        def __init__(self, spec, **kwargs) -> None:
            super().__init__(**kwargs)
            self.spec = spec
            self.norm1 = keras.layers.LayerNormalization(epsilon=spec.epsilon, name="norm1")
            self.attention = keras.layers.MultiHeadAttention(
                num_heads=spec.heads,
                key_dim=spec.key_dim,
                value_dim=spec.key_dim,
                dropout=spec.dropout,  # on the attention probabilities
                use_bias=True,
                name="attention",
            )
            self.norm2 = keras.layers.LayerNormalization(epsilon=spec.epsilon, name="norm2")
            self.mlp = keras.layers.Dense(spec.mlp_units, activation=exact_gelu, name="mlp")
            self.dropouts = [keras.layers.Dropout(spec.dropout) for _ in range(3)]

        def build(self, input_shape):
            width = input_shape[-1]
            self.mlp_output = keras.layers.Dense(width, name="mlp_output")  # needs the width
            self.norm1.build(input_shape)
            self.attention.build(input_shape, input_shape)
            self.norm2.build(input_shape)
            self.mlp.build(input_shape)
            self.mlp_output.build((*input_shape[:-1], self.spec.mlp_units))

        def call(self, x, training=None):
            after_attention, hidden, after_mlp = self.dropouts
            normed = self.norm1(x)
            # causal: step i attends to steps j <= i only (Keras's lower-triangular mask)
            attended = self.attention(
                normed, normed, training=training, use_causal_mask=self.spec.causal
            )
            x = x + after_attention(attended, training=training)
            hidden_values = hidden(self.mlp(self.norm2(x)), training=training)
            return x + after_mlp(self.mlp_output(hidden_values), training=training)

        def harness_variables(self) -> dict[str, Any]:
            """Every array by its harness name (the shapes are already the harness's)."""
            found = {}
            for name, suffix in ENCODER_PATHS.items():
                matches = [v for v in self.weights if v.path.endswith("/" + suffix)]
                if len(matches) != 1:
                    paths = [v.path for v in self.weights]
                    raise UnsupportedSpec(
                        f"transformer_encoder: this Keras keeps its attention weights as {paths}"
                    )
                found[name] = matches[0]
            return found

    return TransformerEncoder
