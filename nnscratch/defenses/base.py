"""What the fitted defences share: one ``fit`` convention, the fitted check, the check of the
images they are given, and the taps on the network they read.

Every detector and reject option (OpenMax, DNR and NR, the softmax threshold, KDE, the
uncertainty-and-crops detector) is a ``Defence``, scikit-learn style::

    defence.fit(model, x, y, x_adv=None, *, <named data>) -> defence
        model   the network, anything with the model interface (``nnscratch.model.Model``)
        x, y    clean images (N, C, H, W) in [0, 1] and their int labels (N,); a defence that
                learns nothing from the labels accepts y=None and checks y when given
        x_adv   adversarial images (M, C, H, W), for the detectors fitted on them (KDE, the
                uncertainty detector); None for those learnt on clean images alone, which
                refuse anything else (OpenMax, DNR, NR, the reject options)
        keyword-only, named after what they are: ``x_val`` (reject options: the clean
        validation images that set the threshold at the chosen reject rate),
        ``density_data`` and ``x_noisy`` (KDE)
    defence.predict(x) -> (N,) int64            the label, or -1 for rejected / adversarial
    defence.score(x) -> (N,)                    higher = more likely rejected / adversarial

``fit`` stores the network in ``model``, which marks the defence fitted (``check_fitted``).
Every public entry point checks its images once (``check_images``): the model's own checks
(type, dtype, shape, device, finite) and values in [0, 1], as the attacks check theirs
(``nnscratch.model.interface.check_unit_images``). Taps: ``tapped(model, x, layers)`` gives
the activations of named layers as flat vectors, one forward pass for all of them.
"""

import math

from nnscratch.model import Model
from nnscratch.model.interface import check_unit_images


def flat(h):
    """Activations (n, ...) as vectors (n, F), F the product of the other axes."""
    return h.reshape(len(h), math.prod(h.shape[1:]))


class Defence:
    """Base of the fitted defences: the ``fit`` convention of the module docstring."""

    model = None                        # set by fit (or load_state): the defence is fitted
    fit_call = "fit(model, x, y)"       # how to fit it, for the message of check_fitted

    def check_fitted(self):
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call {self.fit_call} "
                               "first")

    def check_fit_arguments(self, model, x_adv, needs_adv=False):
        """``model`` must have the model interface; ``x_adv`` must be None (``needs_adv``
        False: a clean-only defence), given (True), or either (None); checked images if given."""
        name = type(self).__name__
        if not isinstance(model, Model):
            raise TypeError(f"{name}.fit takes a model with the model interface, got "
                            f"{type(model).__name__}")
        if needs_adv and x_adv is None:
            raise ValueError(f"{name}.fit needs x_adv (the positives)")
        if needs_adv is False and x_adv is not None:
            raise ValueError(f"{name} is fitted on clean images only: x_adv must be None")
        if x_adv is not None:
            self.check_images(x_adv, model)

    def check_images(self, x, model=None):
        """Images for ``model`` (default: the fitted one) with values in [0, 1]."""
        (self.model if model is None else model).check_images(x)
        check_unit_images(x)

    def tapped(self, model, x, layers):
        """[activations (N, F_l) of each of ``layers`` on x, flattened], one forward pass per
        batch for all of them; a KeyError naming the defence for a layer the model lacks."""
        try:
            taps = model.features(x, list(layers))
        except KeyError as error:
            raise KeyError(f"{type(self).__name__}: the model has no layer to tap among "
                           f"{list(layers)} ({error.args[0]})") from None
        return [flat(taps[name]) for name in layers]
