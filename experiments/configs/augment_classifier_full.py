"""GAN data augmentation for a classifier, full preset (the README table).

  python experiments/augment_classifier.py --workdir=DIR --config=experiments/configs/augment_classifier_full.py

The fast preset (augment_classifier.py) for 10, 20 and 50 labeled digits per
class, synthetic:real ratios 0.5, 1, 2 and 4, classic + GAN at 1 and 4, the
confidence filter at 1, with longer GAN and classifier training. Estimated
time: README, section "GAN data augmentation for a classifier".
"""

from experiments.configs import augment_classifier


def get_config():
    c = augment_classifier.get_config()
    c.n_per_class = (10, 20, 50)
    c.ratios = (0.5, 1.0, 2.0, 4.0)
    c.classic_gan_ratios = (1.0, 4.0)
    c.filter_ratios = (1.0,)
    c.gan.train_steps = 5000
    c.classifier.steps = 1000
    return c
