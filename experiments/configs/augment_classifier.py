"""GAN data augmentation for a classifier, fast preset (the default of experiments/augment_classifier.py).

  python experiments/augment_classifier.py --workdir=DIR

10 labeled digits per class, 5 seeds: a class-conditional MLP GAN per seed,
then the same small CNN trained on real only, real + classic augmentation,
real + GAN samples at synthetic:real ratios 1 and 4, real + classic + GAN,
real + confidence-filtered GAN samples, and GAN samples only (the
classification accuracy score). About 10 minutes on 2 CPU cores (README gives
the measured time). The full preset (10, 20 and 50 per class, more ratios) is
experiments/configs/augment_classifier_full.py.

Any labeled TFDS image dataset prepared offline works by name, e.g.
`--config.data.name=mnist --config.data.image_size=28`; scale the classic
augmentation (pixels) with the image size.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.data = ml_collections.ConfigDict()
    c.data.name = "sklearn_digits"  # a labeled TFDS image dataset, prepared in data_dir (digits: built offline)
    c.data.data_dir = ""  # "" = $JAXGAN_DATA_DIR, $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.data.train_split = "train"  # subsets are drawn from here
    c.data.test_split = "test"  # held out: never seen by the GAN, the classifier or the confidence filter
    c.data.image_size = 8  # the digits' own 8x8 (no upsampling)
    c.data.channels = 1

    c.n_per_class = (10,)  # labeled real images per class, one table block each
    c.seeds = 5  # seeds 0 .. seeds-1 per setting (README says what each seed draws)
    c.ratios = (1.0, 4.0)  # synthetic:real ratios of "real + GAN"
    c.classic_gan_ratios = (1.0,)  # ratios of "real + classic + GAN"
    c.filter_ratios = (1.0,)  # ratios of "real + GAN, confidence-filtered"; () = no filter
    c.filter_oversample = 4  # the filter keeps the most confident 1/oversample of the candidates per class
    c.evaluate_on = "test"  # "test", or "validation" (train images outside the subset) to tune without the test set
    c.max_validation = 1000  # validation images per seed (evaluate_on="validation")
    c.overwrite = False  # True: replace an earlier results.csv in the workdir

    # The conditional GAN (jaxgan's MLP nets; projection D, Miyato & Koyama 2018).
    c.gan = ml_collections.ConfigDict()
    c.gan.train_steps = 3000
    c.gan.steps_per_call = 500
    c.gan.batch_size = 64
    c.gan.latent_dim = 32
    c.gan.g_width = 256
    c.gan.d_width = 256
    c.gan.depth = 2
    c.gan.conditioning = "projection"  # "concat" (Mirza & Osindero 2014) or "projection"
    c.gan.loss = "non_saturating"
    c.gan.learning_rate = 2e-4
    c.gan.b1 = 0.5
    c.gan.diff_augment = ""  # DiffAugment policy on D's inputs (Zhao et al. 2020), e.g. "translation"
    c.gan.ema_decay = 0.999
    c.gan.use_ema = True  # sample the EMA of G's weights

    # The classifier (jaxgan.classify.SmallCNN, AdamW), identical in every setting.
    c.classifier = ml_collections.ConfigDict()
    c.classifier.widths = (16, 32)
    c.classifier.hidden = 64
    c.classifier.steps = 600  # the same number of updates in every setting
    c.classifier.batch_size = 32
    c.classifier.learning_rate = 1e-3
    c.classifier.weight_decay = 1e-4

    # Classic augmentation of the real images (pixels at data.image_size); chosen on validation data.
    c.classic = ml_collections.ConfigDict()
    c.classic.max_shift = 0
    c.classic.max_rotation_degrees = 5.0
    c.classic.elastic_alpha = 2.0
    c.classic.elastic_sigma = 1.0
    c.classic.fill = -1.0  # background outside the image (-1: black)
    return c
