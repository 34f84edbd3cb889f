"""The names the ``nnscratch`` command offers, as plain data that imports nothing.

The command line builds its parser (choices, ``--help``) from these without importing NumPy,
matplotlib or scikit-learn, so ``nnscratch --help`` and ``nnscratch info`` start fast. The
modules that implement the names hold their own tables (``zoo.BUILDERS``, ``data.DATASETS``,
``data.FETCHABLE``, ``data.SPLITS``, ``demo.SETTINGS``); tests/test_cli.py checks that these
lists agree with them.
"""

NETWORKS = ("lenet", "feinman_cnn", "mnist_cnn_harms", "cifar_cnn_harms", "dnr_cnn",
            "binary_cnn", "small_cnn")
DATASETS = ("mnist", "fashion-mnist", "cifar10", "digits")
FETCHABLE = ("mnist", "fashion-mnist", "cifar10")         # digits ships inside scikit-learn
SPLITS = ("train", "validation", "train-rest", "test")
DEMO_DATASETS = ("digits", "mnist")
