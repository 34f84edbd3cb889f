"""A change to the code a study's stage runs must not leave its cached output standing unseen
(runner.py's docstring, "Code"). tests/stage_versions.json records, per stage, its version and
a fingerprint of that code: the source of the stage's module and of every nnscratch module it
imports, directly or not, less comments, docstrings and blank lines. When the code changes,
``test_every_stage_s_code_is_as_recorded`` fails and names the stages; for each of them whose
output changes, bump its ``version`` in the study's STAGES (its cached outputs and its
dependants' are then recomputed), then record the new fingerprints::

    PYTHONPATH=. python tests/test_stage_versions.py

A change that computes the same (a refactor, a faster kernel) is recorded without a bump.
"""

import ast
import functools
import hashlib
import io
import json
import sys
import tokenize
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS.parent))

from nnscratch import experiments      # noqa: E402 (the repository's, run as a script too)

PACKAGE = TESTS.parent / "nnscratch"
RECORD = TESTS / "stage_versions.json"


def code_text(source):
    """``source`` less its comments, docstrings, trailing spaces and blank lines: the same for
    every Python version, so that the record holds wherever the tests run."""
    lines = source.splitlines()
    spans = [token[2:4] for token in tokenize.generate_tokens(io.StringIO(source).readline)
             if token.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            doc = body[0]
            spans.append(((doc.lineno, doc.col_offset), (doc.end_lineno, doc.end_col_offset)))
    for (row, col), (end_row, end_col) in sorted(spans, reverse=True):
        first, last = lines[row - 1], lines[end_row - 1]
        lines[row - 1:end_row] = [first[:col] + " " * (end_col - col if row == end_row else 0)
                                  + last[end_col:]]
    return "\n".join(line.rstrip() for line in lines if line.strip())


def module_path(name):
    """The file of module ``name`` (nnscratch.x.y), or None when it is not a module of ours."""
    parts = name.split(".")
    if parts[0] != "nnscratch" or len(parts) == 1:   # nnscratch/__init__.py: the version only
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@functools.cache             # every stage's closure reads the same modules
def imported(path):
    """The files of the nnscratch modules that the module at ``path`` imports, anywhere in it."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return {found for found in map(module_path, names) if found}


@functools.cache
def closure(path):
    """``path`` and every nnscratch module it imports, directly or not (sorted)."""
    seen, todo = set(), [path]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += imported(current)
    return sorted(seen)


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current():
    """{"modules": {path: fingerprint}, "stages": {"study/stage": {"version", "code"}}}: a
    stage's code is the fingerprint of its modules' (the stage's own and all it imports). A
    borrowed stage is its lender's (runner.py, "Borrowed stages"): recorded there only."""
    modules, stages = {}, {}
    for name in experiments.STUDIES:
        for stage in experiments.load(name).STAGES:
            if stage.study is not None:
                continue
            paths = closure(Path(sys.modules[stage.run.__module__].__file__).resolve())
            names = [path.relative_to(PACKAGE).as_posix() for path in paths]
            for path, module in zip(paths, names):
                if module not in modules:            # each module's text is read once
                    modules[module] = digest(code_text(path.read_text()))
            stages[f"{name}/{stage.name}"] = {
                "version": stage.version,
                "code": digest("".join(f"{module} {modules[module]}\n" for module in names))}
    return {"modules": modules, "stages": stages}


def test_every_stage_s_code_is_as_recorded():
    recorded, now = json.loads(RECORD.read_text()), current()
    changed = sorted(module for module, code in now["modules"].items()
                     if recorded["modules"].get(module) != code)
    lines = [f"changed modules: {', '.join(changed) or 'none'}"]
    for key in sorted(set(recorded["stages"]) | set(now["stages"])):
        was, new = recorded["stages"].get(key), now["stages"].get(key)
        if was is None or new is None:
            lines.append(f"{key}: {'new' if was is None else 'gone'}")
        elif was["code"] != new["code"] and was["version"] == new["version"]:
            lines.append(f"{key}: its code changed: if its output changes, bump its version "
                         f"({new['version']} now)")
        elif was != new:
            lines.append(f"{key}: version {was['version']} -> {new['version']}")
    lines = lines if len(lines) > 1 or changed else []
    assert not lines, ("the stages' code is not as recorded in tests/stage_versions.json:\n  "
                       + "\n  ".join(lines) + "\nthen record it: PYTHONPATH=. python "
                       "tests/test_stage_versions.py (see its docstring)")


def test_the_fingerprint_ignores_comments_docstrings_and_blank_lines_only():
    source = 'def f(x):\n    """Twice x."""\n    return 2 * x  # doubled\n'
    same = 'def f(x):\n    """Twice x, documented\n    otherwise."""\n\n    return 2 * x\n'
    assert code_text(source) == code_text(same) == "def f(x):\n    return 2 * x"
    assert code_text(source) != code_text(source.replace("2 * x", "3 * x"))
    assert code_text('s = "# not a comment"  # one\n') == 's = "# not a comment"'


def test_a_stage_s_code_includes_what_it_imports_underneath():
    path = PACKAGE / "experiments" / "dnr" / "adaptive.py"
    modules = [path.relative_to(PACKAGE).as_posix() for path in closure(path)]
    assert {"experiments/dnr/adaptive.py", "experiments/dnr/stages.py",
            "experiments/common.py", "attacks/reject_aware.py", "defenses/dnr.py",
            "model/sequential.py" if (PACKAGE / "model" / "sequential.py").exists()
            else "model/__init__.py"} <= set(modules)
    assert not any(module.endswith("report.py") for module in modules)


if __name__ == "__main__":
    RECORD.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
    print(f"recorded {RECORD}")
