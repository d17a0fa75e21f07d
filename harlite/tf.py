"""The one place TensorFlow is imported: legacy Keras (tf-keras) so that tfmot works."""

import os
from types import ModuleType


def tensorflow() -> ModuleType:
    """Import TensorFlow with tf-keras as ``tf.keras`` (tfmot 0.8 does not support Keras 3)."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def keras() -> ModuleType:
    """The tf-keras module (Keras 2), which tfmot and the TFLite converter here expect."""
    tensorflow()
    import tf_keras

    return tf_keras
