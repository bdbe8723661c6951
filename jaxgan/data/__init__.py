"""Input data: offline TFDS/npz/image-folder loaders and a resumable batcher.

Import explicitly as `jaxgan.data` (it uses TensorFlow/TFDS, lazily; plain
`import jaxgan` never imports it). `build_digits` / `SklearnDigits` (the
embedded offline `sklearn_digits` TFDS dataset) load on first access.
"""

from jaxgan.data.pipeline import ArrayBatcher
from jaxgan.data.pipeline import default_data_dir
from jaxgan.data.pipeline import load_image_folder
from jaxgan.data.pipeline import load_npz_images
from jaxgan.data.pipeline import load_tfds_images
from jaxgan.data.pipeline import resize_and_convert
from jaxgan.data.pipeline import to_model_range

__all__ = [
    "ArrayBatcher",
    "SklearnDigits",
    "build_digits",
    "default_data_dir",
    "load_image_folder",
    "load_npz_images",
    "load_tfds_images",
    "resize_and_convert",
    "to_model_range",
]


def __getattr__(name: str):
    """Lazily exposes the TFDS digits builder (importing it imports TFDS)."""
    if name in ("build_digits", "SklearnDigits"):
        from jaxgan.data import digits  # pylint: disable=g-import-not-at-top

        return getattr(digits, name)
    raise AttributeError(f"module 'jaxgan.data' has no attribute '{name}'")
