"""The names the ``nnscratch`` command offers, as plain data that imports nothing.

The command line builds its parser (choices, ``--help``) from these without importing NumPy,
matplotlib or scikit-learn, so ``nnscratch --help`` and ``nnscratch info`` start fast. The
modules that implement the names hold their own tables (``zoo.BUILDERS``, ``zoo.RECIPES``,
``data.DATASETS``, ``data.FETCHABLE``, ``data.SPLITS``, ``demo.SETTINGS``,
``attacking.OPTIONS``); tests/test_cli.py and tests/test_attack_command.py check that these
agree with them.
"""

NETWORKS = ("lenet", "feinman_cnn", "mnist_cnn_harms", "cifar_cnn_harms", "dnr_cnn",
            "binary_cnn", "small_cnn")
DATASETS = ("mnist", "fashion-mnist", "cifar10", "digits")
FETCHABLE = ("mnist", "fashion-mnist", "cifar10")         # digits ships inside scikit-learn
SPLITS = ("train", "validation", "train-rest", "test")
DEMO_DATASETS = ("digits", "mnist")
# `nnscratch attack --attack`: attacking.OPTIONS's keys (tests/test_attack_command.py checks)
ATTACKS = ("fgsm", "fgv", "bim", "pgd", "jsma", "cw", "lbfgs", "onepixel", "localsearch")
DEMO_EPOCHS = {"digits": 30, "mnist": 2}                  # the demo's default epochs

# The classes of each dataset, labelled 0 .. n-1: what --classes may name.
CLASSES = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10, "digits": 10}

# The fields of zoo.RECIPES that `nnscratch train` can override, per network, for its --help.
RECIPE_DEFAULTS = {
    "lenet": {"optimizer": "sgd", "lr": 0.01, "batch_size": 64, "epochs": 12,
              "momentum": 0.9, "weight_decay": 5e-4},
    "feinman_cnn": {"optimizer": "adam", "lr": 0.001, "batch_size": 128, "epochs": 20,
                    "momentum": 0.0, "weight_decay": 0.0},
    "mnist_cnn_harms": {"optimizer": "adam", "lr": 0.001, "batch_size": 128, "epochs": 12,
                        "momentum": 0.0, "weight_decay": 0.0},
    "cifar_cnn_harms": {"optimizer": "adam", "lr": 0.001, "batch_size": 128, "epochs": 30,
                        "momentum": 0.0, "weight_decay": 0.0},
    "dnr_cnn": {"optimizer": "sgd", "lr": 0.1, "batch_size": 128, "epochs": 15,
                "momentum": 0.9, "weight_decay": 0.0},
    "binary_cnn": {"optimizer": "adam", "lr": 0.001, "batch_size": 64, "epochs": 5,
                   "momentum": 0.0, "weight_decay": 0.0},
    "small_cnn": {"optimizer": "adam", "lr": 0.005, "batch_size": 32, "epochs": 30,
                  "momentum": 0.0, "weight_decay": 0.0},
}


def recipe_default(field):
    """"the recipe's: lenet 0.01, dnr_cnn 0.1, the others 0.001": ``field``'s value in each
    network's recipe, the most common one said once."""
    values = {name: recipe[field] for name, recipe in RECIPE_DEFAULTS.items()}
    listed = list(values.values())
    common = max(listed, key=lambda value: (listed.count(value), -listed.index(value)))
    named = [f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
             for name, value in values.items() if value != common]
    common = f"{common:g}" if isinstance(common, float) else common
    return f"default: the recipe's: {', '.join(named)}, the others {common}"
