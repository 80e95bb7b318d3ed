"""Keras 3 on JAX and on PyTorch, registered as the frameworks ``keras_jax`` and ``keras_torch``."""

import harness
from harness_keras.adapter import KerasAdapter


@harness.hookimpl
def harness_register_frameworks(register):
    register(KerasAdapter("jax"))
    register(KerasAdapter("torch"))
