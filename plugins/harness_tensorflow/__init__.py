"""TensorFlow/Keras for harness. Registered through the ``harness`` entry point ``tensorflow``."""

import harness
from harness_tensorflow.adapter import TensorFlowAdapter


@harness.hookimpl
def harness_register_frameworks(register):
    register(TensorFlowAdapter())
