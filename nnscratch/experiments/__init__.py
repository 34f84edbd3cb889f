"""The studies ``nnscratch reproduce`` runs: one sub-package per paper, on the framework in
``runner.py`` (its docstring says what a study declares).

``STUDIES`` maps each study's name to its package, imported only when the study is asked for
(``load``), so that ``nnscratch reproduce --list`` can say which of them cannot be imported
instead of failing on the first.
"""

import importlib

STUDIES = {
    "gunther": "nnscratch.experiments.gunther",
    "alshemali": "nnscratch.experiments.alshemali",
    "dnr": "nnscratch.experiments.dnr",
    "wang": "nnscratch.experiments.wang",
    "harms": "nnscratch.experiments.harms",
    "patches": "nnscratch.experiments.patches",
}


def load(name):
    """The module of study ``name``; a ValueError listing the known studies for another name.
    (An error of the module itself, such as a missing dependency, goes on as it is.)"""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; known: {', '.join(STUDIES)} "
                         "(nnscratch reproduce --list says what each reproduces)")
    return importlib.import_module(STUDIES[name])
