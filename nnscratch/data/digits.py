"""scikit-learn's bundled handwritten digits: the embedded dataset that always works offline.

Source: the test part of UCI "Optical Recognition of Handwritten Digits" (Alpaydin & Kaynak
1998), shipped in ``sklearn.datasets.load_digits``: 1,797 images of 8x8 pixels, each a count
0..16 of ink in a 4x4 block, ten classes of about 180. Nothing is downloaded or cached.

It has no standard split, so this is a fixed, stratified one: within each class a shuffle
seeded with ``SPLIT_SEED`` puts round(20%) of the images in "test" and the rest in "train"
(1,438 / 359 images). Arrays come in the cache layout, x (N, 1, 8, 8) uint8 0..16, y (N,)
uint8; ``PIXEL_MAX`` is what to divide by.
"""

import numpy as np

PIXEL_MAX = 16
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def arrays():
    """{"x_train", "y_train", "x_test", "y_test"} of the fixed split described above."""
    # Imported here: scikit-learn takes about a second to import, and only this dataset needs it.
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype(np.uint8)[:, None]   # float 0..16 (whole numbers) -> (N, 1, 8, 8)
    y = digits.target.astype(np.uint8)
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        test[members[:round(TEST_FRACTION * len(members))]] = True
    return {"x_train": x[~test], "y_train": y[~test], "x_test": x[test], "y_test": y[test]}
