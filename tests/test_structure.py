"""The package keeps its shape: each module imports only from the layers below it
(ARCHITECTURE.md), attacks and defences never import each other, the engine core stays
small enough to read in an afternoon, and no module grows past about 300 lines."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nnscratch"

# The package's layers, from the ground floor (checks, which imports nothing of the package) to
# the top (commands, the `nnscratch` command, which nothing imports): a module may import from
# its own layer and those listed before it. The package root holds the engine and what builds
# on it; the command line is one package on top.
LAYERS = ["checks", "backend", "files", "ops", "layers", "losses", "model", "optim",
          "gradcheck",
          "io", "training", "data", "zoo", "metrics", "plots", "gan", "attacks", "defenses",
          "evaluation", "experiments", "commands"]
SIBLINGS = {"attacks": "defenses", "defenses": "attacks"}   # neither imports the other
# The engine a reader goes through in an afternoon (the README's reading path): backend to
# gradcheck, less files.py, which is I/O plumbing, not part of the engine.
ENGINE_CORE = ["backend", "ops", "layers", "losses", "model", "optim", "gradcheck"]
# 1,600 until the engine's constructors and entry points checked their arguments (the
# refuse-bad-input issue: check_integer / check_real, param_shapes for io.load): 1,650.
# The honest-speed issue's measured tricks, each with its reasoning and gain in a docstring (a
# second way to the convolution's input gradient, im2col as one strided copy, column_sums): 1,750.
# The GAN issue's layers: the transposed convolution (conv_transpose.py, 118 lines), Reshape
# (23 lines beside Flatten), their exports: 141 lines more, 1,891.
ENGINE_CORE_LINES = 1891
MODULE_LINES = 300


def modules():
    """{path: top-level name under nnscratch} for every module of the package."""
    return {path: path.relative_to(PACKAGE).parts[0].removesuffix(".py")
            for path in sorted(PACKAGE.rglob("*.py"))}


def imported_layers(path):
    """The top-level nnscratch names that the module at ``path`` imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            dotted = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            dotted = ([f"{node.module}.{alias.name}" for alias in node.names]
                      if node.module == "nnscratch" else [node.module])
        else:
            continue
        names |= {d.split(".")[1] for d in dotted
                  if d.startswith("nnscratch.") and d.split(".")[1] != "__version__"}
    return names


def test_every_module_belongs_to_a_layer():
    unknown = {str(path): name for path, name in modules().items()
               if name not in LAYERS and name != "__init__"}
    assert not unknown, f"modules outside the layers: {unknown}"


def test_modules_import_only_from_the_layers_above():
    violations = []
    for path, name in modules().items():
        if name == "__init__":       # the package's own __init__: the version, nothing else
            assert not imported_layers(path)
            continue
        for imported in imported_layers(path):
            if LAYERS.index(imported) > LAYERS.index(name) or SIBLINGS.get(name) == imported:
                violations.append(f"{path.relative_to(PACKAGE)} imports nnscratch.{imported}")
    assert not violations, "imports against the layering:\n  " + "\n  ".join(violations)


def test_the_layering_check_can_fail(tmp_path):
    module = tmp_path / "ops.py"
    module.write_text("def f():\n    from nnscratch.model import Sequential\n"
                      "from nnscratch import layers as L, backend\n")
    assert imported_layers(module) == {"model", "layers", "backend"}


def line_count(path):
    return len(path.read_text().splitlines())


def test_the_engine_core_stays_small():
    core = sum(line_count(path) for path, name in modules().items() if name in ENGINE_CORE)
    assert core <= ENGINE_CORE_LINES, (
        f"the engine core ({', '.join(ENGINE_CORE)}) has {core} lines, over its budget of "
        f"{ENGINE_CORE_LINES}")


def test_no_module_is_over_300_lines():
    long = {str(path.relative_to(PACKAGE)): line_count(path) for path in modules()
            if line_count(path) > MODULE_LINES}
    assert not long, f"modules over {MODULE_LINES} lines (split them by concept): {long}"
