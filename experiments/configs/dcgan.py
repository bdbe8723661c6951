"""DCGAN (Radford et al. 2016) on the embedded offline digits, upsampled to 32x32.

  python experiments/train.py --config=experiments/configs/dcgan.py

About 5 minutes on 2 CPU cores (1500 steps at batch 64, ~5 steps/s after a
~10 s compile); digits are recognizable in the EMA samples by the end.
"""

from jaxgan.config import base_config


def get_config():
    return base_config()
