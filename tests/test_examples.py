"""The README's first command runs examples/quickstart.py: it must keep working."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_trains_and_attacks():
    result = subprocess.run([sys.executable, "examples/quickstart.py"], cwd=REPO,
                            capture_output=True, text=True, timeout=300, check=True)
    clean = float(re.findall(r"epoch \d+: .*test accuracy ([0-9.]+)", result.stdout)[-1])
    attacked = [float(a) for a in re.findall(r"FGSM eps=[0-9.]+: test accuracy ([0-9.]+)",
                                             result.stdout)]
    assert clean > 0.9
    assert len(attacked) == 3 and attacked[-1] < clean        # the attack does something
