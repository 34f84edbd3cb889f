"""What a stage's ``run`` gets besides its settings and inputs (``Context``), and the run's
lines on stderr (``StageLines``): one per stage, ``[3/9] attack_fgv ... 41.2 s`` or
``[3/9] attack_fgv ... cached``, with the stage's own messages (``ctx.log``) under it.

A stage reports through its context rather than by printing, so that its messages and its
progress bar (tqdm, on a terminal only) do not cut the stage's line in two.
"""

import sys


class StageLines:
    """The run's lines on stderr: one per stage, ``[3/9] attack_fgv ... 41.2 s`` (or
    ``cached``); a stage's own messages break it, and it is written whole again at the end."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.heading, self.broken = "", False

    def begin(self, heading):
        self.heading, self.broken = heading, False
        self.write(heading, end="")

    def break_line(self):
        if not self.broken:
            self.write("")
            self.broken = True

    def message(self, text):
        self.break_line()
        self.write(f"    {text}")

    def end(self, outcome):
        self.write(f"{self.heading} {outcome}" if self.broken else f" {outcome}")

    def write(self, text, end="\n"):
        if self.enabled:
            print(text, end=end, file=sys.stderr, flush=True)


class Context:
    """What a stage's ``run`` gets besides its settings and inputs: where to checkpoint, and
    where to report. Nothing that changes a result: that is in the stage's ``cfg``, hashed."""

    def __init__(self, checkpoint_dir, lines):
        self.checkpoint_dir = checkpoint_dir    # for fit(..., checkpoint_dir=, resume=True)
        self._lines = lines

    def progress(self, iterable, total=None, what=""):
        """``iterable`` with a progress bar (tqdm) when stderr is a terminal; else as it is."""
        if not (self._lines.enabled and sys.stderr.isatty()):
            return iterable
        from tqdm.auto import tqdm
        self._lines.break_line()
        return tqdm(iterable, total=total, desc=what or None, leave=False)

    def log(self, message):
        """A line on stderr, under the stage's."""
        self._lines.message(message)
