"""The figures: written as image files, without touching the matplotlib state of the program
that draws them."""

import subprocess
import sys
import textwrap

# In a fresh interpreter, so that the backend chosen first is the only choice made before.
DRAW_UNDER_ANOTHER_BACKEND = textwrap.dedent("""
    import sys
    import matplotlib
    matplotlib.use("svg")
    import numpy as np
    from nnscratch import plots

    history = {"epoch": [1, 2], "loss": [1.0, 0.5], "accuracy": [0.5, 0.8],
               "val_loss": [1.1, 0.6], "val_accuracy": [0.4, 0.7]}
    plots.training_curves(history, sys.argv[1] + "/curves.png")
    plots.confusion_matrix(np.array([[5, 1], [0, 6]]), sys.argv[1] + "/confusion.png")
    print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
""")


def test_plots_write_pngs_and_leave_the_backend_alone(tmp_path):
    result = subprocess.run([sys.executable, "-c", DRAW_UNDER_ANOTHER_BACKEND, str(tmp_path)],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["svg", "False"]
    for name in ("curves.png", "confusion.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "curves.png"]
