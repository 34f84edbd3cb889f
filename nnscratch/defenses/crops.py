"""Five overlapping crops, each resized back to the image size, and the k-of-5 vote on them:
the secondary check of Alshemali, Graham & Kalita ("Toward Robust Image Classification",
section 3.2), who take the crops "in the manner of Graese et al." (Graese, Rozsa & Boult 2016).

    crop_resize(x, crop)          x (N, C, H, W) -> (5, N, C, H, W)
    CropResizeVote(model, crop, votes).agreements(x, labels) -> (N,) int
                                      .agree(x, labels)      -> (N,) bool

Crops, in this order (rows, columns of the crop's top-left corner):

    top-left (0, 0), bottom-left (H - c, 0), top-right (0, W - c), bottom-right (H - c, W - c),
    centre ((H - c) // 2, (W - c) // 2)

each c x c, then resized to H x W by bilinear interpolation written here, with the sampling
convention of OpenCV's ``cv2.resize(..., interpolation=INTER_LINEAR)`` (which the paper's
authors used), i.e. PyTorch's ``align_corners=False``: output pixel d along an axis of size D
reads the crop at

    s = (d + 1/2) c / D - 1/2,   clamped to [0, c - 1]

(pixel centres aligned, edges replicated), interpolating linearly between rows floor(s) and
floor(s) + 1. The resize is separable and linear, so it is two small matrices:
resized = R_H @ crop @ R_W^T with R (D, c) holding the two weights (1 - t, t) per row. c == H
== W gives R = I: the crops are then the image itself. (For uint8 images OpenCV rounds the
weights to 11-bit fixed point; on float images, as here, it computes them exactly like this.)

Choices where the paper is silent:
- The crop size. Neither Alshemali et al. nor the text we have of Graese et al. gives it
  (Günther, Rozsa & Boult 2017 only remark that Graese et al. rescaled the images before
  cropping). Default ``crop=24`` of MNIST's 28: the four corner crops are 4 pixels apart,
  and each resize scales by 28/24 = 1.17, a small change of the kind image acquisition makes.
- ``votes=4``: the paper's rule (the image passes when four of the five crops agree with the
  original classification), which it reports as the best of the k it tried.
"""

from nnscratch.backend import get_array_module
from nnscratch.checks import check_integer, check_labels
from nnscratch.model import Model
from nnscratch.model.interface import check_image_batch

CROP_NAMES = ("top-left", "bottom-left", "top-right", "bottom-right", "centre")


def crop_corners(height, width, crop):
    """(row, column) of the top-left pixel of each of the five crops, in ``CROP_NAMES`` order."""
    bottom, right = height - crop, width - crop
    return ((0, 0), (bottom, 0), (0, right), (bottom, right), (bottom // 2, right // 2))


def resize_matrix(size, crop, xp, dtype):
    """R (size, crop): row d holds the linear-interpolation weights of output pixel d, read at
    s = (d + 1/2) crop / size - 1/2 clamped to [0, crop - 1] (OpenCV's INTER_LINEAR)."""
    d = xp.arange(size, dtype=xp.float64)
    s = xp.clip((d + 0.5) * (crop / size) - 0.5, 0, crop - 1)
    below = xp.floor(s)
    t = (s - below)[:, None]                                        # weight of the pixel above
    below = below.astype(xp.int64)[:, None]
    above = xp.minimum(below + 1, crop - 1)
    columns = xp.arange(crop)[None, :]
    weights = (1 - t) * (columns == below) + t * (columns == above)
    return weights.astype(dtype)


def crop_resize(x, crop):
    """The five crops of size ``crop`` x ``crop``, each resized back to H x W (module docstring).

    x: (N, C, H, W) floating -> (5, N, C, H, W), same dtype and array module, crops in
    ``CROP_NAMES`` order. Bilinear, align_corners=False (OpenCV's convention). Vectorised:
    one matrix product per axis for all images and crops at once.
    """
    xp = check_image_batch(x)
    height, width = x.shape[2:]
    crop = check_integer(crop, "crop_resize: crop")
    if crop > min(height, width):
        raise ValueError(f"crop_resize: crop={crop} is larger than the image "
                         f"({height} x {width})")
    crops = xp.stack([x[:, :, i:i + crop, j:j + crop]
                      for i, j in crop_corners(height, width, crop)])     # (5, N, C, c, c)
    rows = resize_matrix(height, crop, xp, x.dtype)                      # (H, c)
    cols = resize_matrix(width, crop, xp, x.dtype)                       # (W, c)
    return rows @ crops @ cols.T                                         # (5, N, C, H, W)


class CropResizeVote:
    """How many of the five resized crops the model classifies as a given label.

    agreements(x, labels) -> (N,) int64: #{k : model.predict(crop_resize(x)[k]) == labels}
    agree(x, labels) -> (N,) bool: agreements >= votes      (Alshemali et al.: 4 of 5)
    crop_predictions(x) -> (5, N) int64: the model's label for every crop

    Uses only ``model.predict``. All 5N crops go to the model as one batch of 5N images (the
    model batches them internally); memory is five times that of x for the crops.
    """

    def __init__(self, model, crop=24, votes=4):
        if not isinstance(model, Model):
            raise TypeError(f"CropResizeVote takes a model with the model interface "
                            f"(nnscratch.model.Model), got {type(model).__name__}")
        self.model = model
        self.crop = check_integer(crop, "CropResizeVote: crop")
        self.votes = check_vote_count(votes, "CropResizeVote: votes")

    def __repr__(self):
        return f"CropResizeVote({type(self.model).__name__}, crop={self.crop}, votes={self.votes})"

    def crop_predictions(self, x):
        """The model's labels for the five crops of every image: (5, N) int64."""
        crops = crop_resize(x, self.crop)
        flat = crops.reshape((5 * len(x),) + tuple(x.shape[1:]))
        return self.model.predict(flat).reshape(5, len(x)).astype(get_array_module(x).int64)

    def agreements(self, x, labels):
        """(N,) int64: the number of crops (0..5) whose predicted class equals ``labels``."""
        xp = check_image_batch(x)
        check_labels(labels, len(x))
        return (self.crop_predictions(x) == labels[None, :]).sum(axis=0).astype(xp.int64)

    def agree(self, x, labels):
        """(N,) bool: at least ``votes`` of the five crops agree with ``labels``."""
        return self.agreements(x, labels) >= self.votes


def check_vote_count(votes, what):
    """``votes`` as an int in 1..5 (a k-of-5 rule), else a clear error."""
    votes = check_integer(votes, what)
    if votes > 5:
        raise ValueError(f"{what} must be in 1..5 (a k-of-5 rule), got {votes}")
    return votes
