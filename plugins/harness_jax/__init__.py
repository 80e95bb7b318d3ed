"""JAX (Flax + Optax) for harness. Registered through the ``harness`` entry point ``jax``."""

import harness
from harness_jax.adapter import JaxAdapter


@harness.hookimpl
def harness_register_frameworks(register):
    register(JaxAdapter())
