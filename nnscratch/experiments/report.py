"""What a study's run leaves in its output folder, written whole through ``files.atomic_dir``::

    results.json     the study, its configuration, seed, quick or full, versions, machine,
                     start time, every stage (hash, seconds, cached or not), every table's
                     rows (with the difference to the paper) and the checks
    tables.md        each table, paper beside measured, and under it a line for every row
                     whose difference is over its tolerance, with the likely reason
    figures/*.png    the study's figures

A study's ``tables`` returns ``Table``s of ``Row``s, defined here beside the code that renders
them. An existing folder is replaced only when it holds nothing but these (an earlier run's
results), so that ``--out`` can never delete a user's files.
"""

import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import re
import sys

import numpy as np

import nnscratch
from nnscratch import files

RESULT_FILES = ("results.json", "tables.md")
FIGURES = "figures"
FIGURE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of a paper's table: what was measured beside what the paper reports."""
    label: str
    measured: float
    paper: float | None = None
    unit: str = "%"             # "%": percentages in 0..100
    tolerance: float = 3.0      # a difference above this gets a line under the table
    reason: str = ""            # the likely reason it differs (scaled training, ...)


@dataclasses.dataclass(frozen=True)
class Table:
    """One of the paper's tables, reproduced: a Row per quantity."""
    title: str
    rows: list
    note: str = ""              # e.g. "scaled: 3 epochs instead of 100k iterations"


absolute = files.absolute      # the runner's name for it


def refuse_unless_replaceable(out):
    """Raise ValueError unless ``out`` is absent or a folder of an earlier run's results
    (``RESULT_FILES`` and ``figures/*.png``), and not the current folder or one holding it."""
    files.refuse_unless_replaceable(out, "a reproduction", RESULT_FILES, (FIGURES,))


def environment():
    """The versions and the machine a run's results came from."""
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None
    return {"versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "scipy": version("scipy"), "matplotlib": version("matplotlib"),
                         "nnscratch": nnscratch.__version__},
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "processor": platform.processor() or platform.machine()}}


def difference(row):
    """measured - paper (None without a paper value)."""
    return None if row.paper is None else row.measured - row.paper


def over_tolerance(row):
    """True when ``row`` differs from the paper by more than its tolerance (a measured NaN
    differs)."""
    return row.paper is not None and not abs(difference(row)) <= row.tolerance


def table_json(table):
    """A Table as results.json keeps it: its rows with their difference."""
    return {"title": table.title, "note": table.note,
            "rows": [dict(dataclasses.asdict(row), difference=difference(row),
                          over_tolerance=over_tolerance(row)) for row in table.rows]}


def value_text(value, unit):
    """85.37%, 0.0312 L2, 12"""
    if unit == "%":
        return f"{value:.2f}%"
    return f"{value:.4g} {unit}".rstrip()


def difference_text(value, unit):
    """+14.53 pts (percentage points), -0.012 L2"""
    if unit == "%":
        return f"{value:+.2f} pts"
    return f"{value:+.4g} {unit}".rstrip()


def markdown(results, tables):
    """tables.md: the run's heading, then each table and the rows that differ, then the checks."""
    run = "quick" if results["quick"] else "full"
    cached = sum(stage["cached"] for stage in results["stages"])
    lines = [f"# {results['title']}", "",
             f"`nnscratch reproduce {results['study']}`: {run} run, seed {results['seed']}, "
             f"started {results['started']}, {results['seconds']:.0f} s "
             f"({cached} of {len(results['stages'])} stages found in the cache).", ""]
    for table in tables:
        lines += [f"## {table.title}", ""]
        if table.note:
            lines += [f"*{table.note}*", ""]
        lines += ["| quantity | paper | measured | difference |", "|---|---|---|---|"]
        for row in table.rows:
            paper = "—" if row.paper is None else value_text(row.paper, row.unit)
            change = "—" if row.paper is None else difference_text(difference(row), row.unit)
            label = row.label.replace("|", "\\|")
            lines.append(f"| {label} | {paper} | {value_text(row.measured, row.unit)} | "
                         f"{change} |")
        differing = [row for row in table.rows if over_tolerance(row)]
        if differing:
            lines += ["", "Differences over the tolerance:"]
        for row in differing:
            lines.append(f"- {row.label}: {difference_text(difference(row), row.unit)} "
                         f"(tolerance {difference_text(row.tolerance, row.unit)[1:]}): "
                         f"{row.reason or 'reason not known'}")
        lines.append("")
    if results["checks"]:
        lines += ["## Checks", ""]
        lines += [f"- {'passed' if check['passed'] else 'FAILED'}: {check['check']}"
                  for check in results["checks"]]
        lines.append("")
    return "\n".join(lines)


def strict_json(value):
    """``value`` with every NaN or infinity replaced by None (JSON's null): Python writes them
    as the tokens NaN and Infinity, which strict JSON readers reject. A NaN in a table is a
    cell with nothing to average (no successful adversarial, say)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def write(out, results, tables, figures):
    """Replace ``out`` (absolute; checked with refuse_unless_replaceable) with the run's
    results.json, tables.md and figures/NAME.png, all at once. Every figure is closed after
    it is saved (in pyplot too, when the study made it there)."""
    for name in figures:
        if not (isinstance(name, str) and FIGURE_NAME.match(name)):
            raise ValueError(f"figure names must be letters, digits, '_' and '-', got {name!r}")
    results_text = json.dumps(strict_json(results), indent=2, allow_nan=False)
    tables_text = markdown(results, tables)
    with files.atomic_dir(out, replace=True) as staging:
        files.atomic_write(staging / "results.json", results_text)
        files.atomic_write(staging / "tables.md", tables_text)
        (staging / FIGURES).mkdir()
        for name, figure in figures.items():
            with files.atomic_open(staging / FIGURES / f"{name}.png") as f:
                figure.savefig(f, format="png", dpi=120)
            if "matplotlib.pyplot" in sys.modules:
                sys.modules["matplotlib.pyplot"].close(figure)
        refuse_unless_replaceable(out)      # again: files may have appeared while it ran

