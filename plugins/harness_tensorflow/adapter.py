"""The TensorFlow adapter: a ``keras.Sequential`` compiled and trained with ``model.fit``.

Modes: ``eager`` is Keras's default (``jit_compile="auto"``: a ``tf.function`` graph, which
Keras hands to XLA on a GPU but not on a CPU); ``compiled`` forces XLA (``jit_compile=True``),
and so keeps LSTM and GRU layers off cuDNN's kernel, which XLA can't compile.

Precisions: ``float32`` (TF32 off), ``bfloat16`` and ``mixed``, as Keras's dtype policies
``bfloat16`` and ``mixed_bfloat16`` (:func:`harness.api.precision.keras_settings`), set in
``setup``, before any model is built.

The model, the optimizer (Adam as the harness defines it, epsilon outside the bias-corrected
square root as PyTorch and Optax compute it, not Keras's own variant) and the step timer are
:mod:`harness.api.keras_models`'s, shared with the Keras plugin.

The adapter's module imports nothing heavy: ``harness list`` imports it to show the framework.
What trains (the session and its trainer) lives in :mod:`harness_tensorflow.session`, imported by
``setup``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from harness.api import FrameworkAdapter, RuntimeInfo

if TYPE_CHECKING:
    from harness_tensorflow.session import TensorFlowSession


class TensorFlowAdapter(FrameworkAdapter):
    name = "tensorflow"
    import_name = "tensorflow"
    distribution = "tensorflow"
    install_hint = "pip install 'harness[tensorflow]'"
    modes = ("eager", "compiled")
    precisions = ("float32", "bfloat16", "mixed")
    api_version = 4

    def devices(self) -> list[str]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        return ["cpu", "gpu"] if tf.config.list_physical_devices("GPU") else ["cpu"]

    def setup(
        self, *, device: str, threads: int, mode: str = "eager", precision: str = "float32"
    ) -> TensorFlowSession:
        # Keras 3 picks its backend from this variable when first imported.
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        gpus = tf.config.list_physical_devices("GPU")
        from harness.api import keras_models as keras_support
        from harness.api import precision as precision_settings

        settings: dict = {
            "mode": mode,
            "precision": precision,
            "adam_epsilon": keras_support.ADAM_EPSILON,
        }
        if device == "gpu":
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
            settings["gpu_memory_growth"] = True
            details = tf.config.experimental.get_device_details(gpus[0])
            name = details.get("device_name", "gpu")
        else:
            tf.config.set_visible_devices([], "GPU")
            name = "cpu"
        settings["intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        settings["inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
        # float32 means float32 (TensorFlow uses TF32 by default on Ampere and later GPUs); the
        # Keras policy is global, and set before build() makes a model
        import keras

        manifest = {
            **precision_settings.tensorflow_settings(tf, precision),
            **precision_settings.keras_settings(keras, precision),
        }
        # build() adds to these settings the jit_compile Keras resolved
        from harness_tensorflow.session import TensorFlowSession

        return TensorFlowSession(
            RuntimeInfo(device=device, device_name=name, settings=settings, precision=manifest),
            mode,
        )
