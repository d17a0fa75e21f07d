"""harlite: human activity recognition from a dataset to a microcontroller or a phone.

Importing harlite never imports TensorFlow; stages that need it call :func:`harlite.tf.tensorflow`.
"""

__version__ = "0.1.0"
