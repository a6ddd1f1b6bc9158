"""Shared TFX pipeline machinery: the factory, runner flags, shared components.

TFX 1.16 and TFMA 0.47 are written against Keras 2, while TensorFlow 2.16's
`tf.keras` is Keras 3. `tf_keras` is selected here, before anything imports
TensorFlow, so every entry point that imports this package gets Keras 2.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
