"""Did the generator learn? A classifier trained on the real images judges the generated ones.

A generator that learned makes images the classifier recognises with confidence, of every
class about equally often (a collapsed generator makes one class, or a few). The measures, on
the classifier's softmax p (n, K) over n images:

    confidence    mean over the images of max_k p_k
    confident     share of the images with max_k p_k >= 0.9
    coverage      exp(entropy of the predicted-class histogram) / K: 1 when every class is
                  predicted equally often, 1 / K when only one is

The same measures on real test images say what "high" means for that classifier.
"""

import numpy as np

from nnscratch.backend import to_numpy

CONFIDENT = 0.9


def judge(classifier, images):
    """{"confidence", "confident", "coverage": float, "histogram": [count per class]} of
    ``classifier``'s predictions on ``images`` (n, C, H, W) in [0, 1]."""
    p = to_numpy(classifier.predict_proba(images)).astype(np.float64)   # (n, K)
    top = p.max(axis=1)
    counts = np.bincount(p.argmax(axis=1), minlength=p.shape[1])
    share = counts[counts > 0] / counts.sum()
    return {"confidence": float(top.mean()), "confident": float((top >= CONFIDENT).mean()),
            "coverage": float(np.exp(-(share * np.log(share)).sum()) / p.shape[1]),
            "histogram": counts.tolist()}
