"""The one small framework every study reproduction runs on: stages, their cache, the results.

A study (a sub-package such as ``gunther/``, or any object with these attributes) declares what
it reproduces and does no file I/O of its own::

    NAME, TITLE, FULL_RUN       its name, what it reproduces, the full run's measured time and
                                machine (or "not yet measured")
    config(quick) -> dict       every setting, JSON-able; quick: the same stages, smaller
    STAGES                      [Stage, ...], in the order they run
    tables(config, outputs)     -> [Table]: the paper's tables, measured beside the paper
    figures(config, outputs)    -> {name: matplotlib Figure}, written as figures/NAME.png
    checks(config, outputs)     -> [(what, passed)]: properties a broken pipeline would fail

where ``outputs`` is {stage name: output}.

A stage is a named function ``run(cfg, inputs, ctx) -> output`` of its configuration slice
and of earlier stages' outputs. ``cfg`` is {key: config[key] for key in stage.keys} plus
the run's "seed", nothing else, so a stage cannot depend on a setting its hash ignores (the
quick flag is not a setting: it only chooses the configuration, so a stage whose slice is the
same in both runs computes the same output); ``inputs`` is {name: output} of the stages named
in ``uses``; ``ctx`` is a ``Context`` (context.py: checkpoint_dir, progress, log), which holds
nothing that changes a result. The output is a dict of NumPy arrays, trained ``Sequential``
models and JSON values (store.py).

Hash: the SHA-256 of the canonical JSON (sorted keys, no spaces) of
``[study name, stage name, stage version, cfg, sorted hashes of the stages it uses]``. It
changes when a setting in the stage's slice changes, when the stage's ``version`` is bumped,
or when a stage upstream is recomputed for either reason, and only then: the stage and its
dependants are recomputed, the others found in the cache.

Borrowed stages: a study may run another study's stage as that study would, sharing its cached
output: ``Stage(..., study="dnr")`` is hashed and stored under the other study's name, so it is
found in the cache whichever of the two computed it (the patches study takes the DNR study's
network and fitted defences). It must be that study's own stage (one of the studies in
``experiments.STUDIES``; same function, uses, keys and version), and its ``uses`` borrowed
from the same study; its ``keys`` hold that study's settings: the borrowing study's
configuration copies them, or the hash differs and the stage is computed anew. A run holds the
lender's cache as well as its own.

Code: a change to what a stage computes (a bug fixed in the stage, in the study's code or in
the attacks and defences underneath) must leave no stale output, so the stage's ``version`` is
in its hash, and tests/test_stage_versions.py holds a recorded fingerprint of the code each
stage runs (the source of its module and of every nnscratch module it imports, directly or
not, less comments, docstrings and blank lines): when that code changes, the test fails until
the developer has bumped the version of each stage whose output changes and recorded the new
fingerprints (``python tests/test_stage_versions.py``), so the decision is made, and shows in
review. Hashing the code itself instead was weighed and not chosen: a hash of the stage's own
module misses the fixes underneath it (a PGD bug fixed in attacks/), while a hash of all it
imports recomputes every stage (hours of a full run) on any edit of the engine, most of which
(a refactor, a faster kernel) change no result; a source hash also differs between Python
versions if taken of the syntax tree, and cannot be taken at all where only bytecode is
installed. A version is plain data: the same in an editable checkout and an installed
package. (A new version, or this scheme itself, recomputes a full run's cached stages once.)

Cache: ``cache_dir/STUDY/STAGE-HASH16/`` holds a finished stage's output, written through
``files.atomic_dir`` (store.py), so the folder exists only once complete: a stage whose
folder exists is loaded ("cached"), not run. Later stages, the tables, figures and checks
always get outputs as read back from the cache, computed now or before, so a run that
computed a stage and one that found it cached go on identically (and every fresh output is
checked to read back equal). One run at a time holds a study's cache (``files.locked``).

Resume: a run killed in a stage (SIGKILL included) leaves at most the stage's staging folder,
which the next run removes (``files.remove_unfinished``) before running the stage again. A
training stage passes ``ctx.checkpoint_dir`` (``STAGE-HASH16.checkpoints``, kept until the
stage has finished) to ``fit(..., checkpoint_dir=ctx.checkpoint_dir, resume=True)``, so it
resumes at the last finished epoch.

Results (report.py): ``out_dir`` receives results.json, tables.md and figures/, written in a
staging folder renamed at the end. A quick run asserts the checks (``ChecksFailed``, raised
after the results are written); a full run reports them.
"""

import contextlib
import dataclasses
import datetime
import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from nnscratch import files
from nnscratch.experiments import report, store
from nnscratch.experiments.context import Context, StageLines

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")      # study and stage folder names
RESERVED = ("seed",)                                         # added to every stage's cfg


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a study: ``run(cfg, inputs, ctx) -> output`` (see the module docstring)."""
    name: str
    run: Callable
    uses: tuple = ()        # names of earlier stages whose outputs it takes
    keys: tuple = ()        # the configuration entries it depends on (its config slice)
    version: int = 1        # bumped when what it computes changes (see "Code" above)
    study: str | None = None    # the study it is borrowed from (see "Borrowed stages" above)


class ChecksFailed(AssertionError):
    """A quick run's property checks failed (its results were written all the same)."""


def canonical(value):
    """The canonical JSON text of ``value``: what a stage's hash is made of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def stage_hash(study_name, stage_name, cfg, used_hashes, version=1):
    """Hex SHA-256 of [study name, stage name, version, cfg, sorted hashes of the stages it
    uses]."""
    text = canonical([study_name, stage_name, version, cfg, sorted(used_hashes)])
    return hashlib.sha256(text.encode()).hexdigest()


def stage_config(stage, config, seed):
    """The stage's ``cfg``: its slice of ``config`` and the run's "seed"."""
    return {**{key: config[key] for key in stage.keys}, "seed": seed}


def study_config(study, quick):
    """``study.config(quick)``, after checking the study is one the runner can run."""
    name = getattr(study, "NAME", None)
    if not (isinstance(name, str) and SAFE_NAME.match(name)):
        raise ValueError(f"a study's NAME must be letters, digits, '_' and '-', got {name!r}")
    config = study.config(quick)
    if not isinstance(config, dict):
        raise TypeError(f"study {name}: config() must return a dict, got "
                        f"{type(config).__name__}")
    try:
        canonical(config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"study {name}: its configuration is not JSON ({error})") from None
    reserved = [key for key in RESERVED if key in config]
    if reserved:
        raise ValueError(f"study {name}: the configuration may not hold {reserved}: the "
                         "runner gives every stage the run's seed")
    seen, lent = [], {}
    for stage in study.STAGES:
        where = f"study {name}, stage {getattr(stage, 'name', stage)!r}"
        if not isinstance(stage, Stage):
            raise TypeError(f"{where}: STAGES must hold Stage objects")
        if isinstance(stage.uses, str) or isinstance(stage.keys, str):
            raise TypeError(f"{where}: uses and keys are tuples of names, e.g. ('epochs',)")
        if isinstance(stage.version, bool) or not isinstance(stage.version, int) \
                or stage.version < 1:
            raise ValueError(f"{where}: version must be an integer >= 1, got {stage.version!r}")
        if not SAFE_NAME.match(stage.name) or stage.name in seen:
            raise ValueError(f"{where}: a stage name must be new, of letters, digits, '_' "
                             "and '-'")
        if stage.study is not None and not (
                isinstance(stage.study, str) and SAFE_NAME.match(stage.study)
                and all(lent[used] == stage.study for used in stage.uses if used in lent)):
            raise ValueError(f"{where}: a borrowed stage names its study (letters, digits, "
                             "'_', '-') and uses only stages borrowed from it")
        if stage.study is not None:
            check_lent(stage, where)
        lent[stage.name] = stage.study
        later = [used for used in stage.uses if used not in seen]
        missing = [key for key in stage.keys if key not in config]
        if later or missing:
            raise ValueError(f"{where}: uses {later} (not earlier stages), keys {missing} "
                             "(not in the configuration)")
        seen.append(stage.name)
    return config


def check_lent(stage, where):
    """Refuse a borrowed stage that is not its lender's own: another function, uses, keys or
    version would write into the lender's cache what the lender itself would not compute."""
    from nnscratch import experiments
    own = {lent.name: lent for lent in experiments.load(stage.study).STAGES}.get(stage.name)
    if own is None or (own.run, own.uses, own.keys, own.version) != (
            stage.run, stage.uses, stage.keys, stage.version):
        raise ValueError(f"{where}: not study {stage.study}'s own stage {stage.name!r} (same "
                         "function, uses, keys and version)")


def numeric(table, study_name):
    """``table`` with its rows' measured, paper and tolerance as floats (a NumPy float32 would
    not go into JSON); a TypeError naming the row for one that is not a number."""
    if not (isinstance(table, report.Table)
            and all(isinstance(row, report.Row) for row in table.rows)):
        raise TypeError(f"study {study_name}: tables() must return Tables of Rows")
    rows = []
    for row in table.rows:
        try:
            rows.append(dataclasses.replace(
                row, measured=float(row.measured), tolerance=float(row.tolerance),
                paper=None if row.paper is None else float(row.paper)))
        except (TypeError, ValueError):
            raise TypeError(f"study {study_name}, table {table.title!r}, row {row.label!r}: "
                            "measured, paper and tolerance must be numbers") from None
    return dataclasses.replace(table, rows=rows)


def default_cache_dir():
    """The data cache's folder ($NNSCRATCH_DATA, else ~/.cache/nnscratch) / "stages"."""
    from nnscratch.data.cache import cache_dir
    return cache_dir() / "stages"


def compute(stage, cfg, inputs, ctx, folder, record):
    """Run ``stage`` and store its output in ``folder``; returns the output as computed. Its
    checkpoints go once it is stored (an empty folder of them at once if the stage fails)."""
    ctx.checkpoint_dir.mkdir(exist_ok=True)
    began = time.perf_counter()
    try:
        output = stage.run(json.loads(canonical(cfg)), inputs, ctx)   # a copy of what is hashed
        store.save(folder, output, dict(record, compute_seconds=time.perf_counter() - began))
    except BaseException:
        if not any(ctx.checkpoint_dir.iterdir()):
            ctx.checkpoint_dir.rmdir()
        raise
    shutil.rmtree(ctx.checkpoint_dir)
    return output


def run_stages(study, config, seed, cache, lines):
    """({stage name: output}, [per stage: name, hash, cached, seconds, compute_seconds]), the
    stages in ``cache / STUDY``, each borrowed stage in its own study's folder."""
    owners = {stage.name: stage.study or study.NAME for stage in study.STAGES}
    outputs, hashes, records = {}, {}, []
    with contextlib.ExitStack() as held:
        for owner in sorted(set(owners.values())):
            (cache / owner).mkdir(parents=True, exist_ok=True)
            held.enter_context(files.locked(cache / owner))
            files.remove_unfinished(cache / owner)   # a killed run's staging folders
        for number, stage in enumerate(study.STAGES, 1):
            cfg = stage_config(stage, config, seed)
            used = {name: hashes[name] for name in stage.uses}
            owner = owners[stage.name]
            hashes[stage.name] = stage_hash(owner, stage.name, cfg, used.values(),
                                            stage.version)
            stage_dir = cache / owner / f"{stage.name}-{hashes[stage.name][:16]}"
            lines.begin(f"[{number}/{len(study.STAGES)}] {stage.name} ...")
            began = time.perf_counter()
            cached = stage_dir.exists()
            if not cached:
                ctx = Context(stage_dir.with_name(stage_dir.name + ".checkpoints"), lines)
                record = {"study": owner, "stage": stage.name, "version": stage.version,
                          "hash": hashes[stage.name], "cfg": cfg, "uses": used}
                computed = compute(stage, cfg, {name: outputs[name] for name in stage.uses},
                                   ctx, stage_dir, record)
            outputs[stage.name], saved = store.load(stage_dir)
            if not cached and not store.outputs_equal(computed, outputs[stage.name]):
                shutil.rmtree(stage_dir)
                raise RuntimeError(f"stage {stage.name!r}: its output did not read back "
                                   f"equal from {stage_dir} (a bug of experiments/store.py)")
            if saved.get("hash") != hashes[stage.name]:
                raise ValueError(f"{stage_dir} holds the output of another configuration "
                                 f"(hash {saved.get('hash')}): delete it")
            seconds = time.perf_counter() - began
            lines.end("cached" if cached else f"{seconds:.1f} s")
            records.append({"name": stage.name, "study": owner, "hash": hashes[stage.name],
                            "cached": cached, "seconds": seconds,
                            "compute_seconds": saved.get("compute_seconds")})
    return outputs, records


def run_study(study, out_dir, quick=False, seed=0, cache_dir=None, progress=True):
    """Run ``study``'s stages (loading those already in the cache) and write its results into
    ``out_dir``; returns the results dict (what results.json holds).

    quick: the study's small configuration, its checks asserted (ChecksFailed after the
    results are written). cache_dir: default ``default_cache_dir()``. progress: a line per
    stage and the stages' messages on stderr; False: silent. ``out_dir`` is refused before
    any stage runs unless absent or holding an earlier run's results, which it replaces."""
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    began = time.perf_counter()
    config = study_config(study, quick)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    out_dir = report.absolute(out_dir)
    report.refuse_unless_replaceable(out_dir)
    files.refuse_unwritable(out_dir)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    lines = StageLines(progress)
    outputs, stages = run_stages(study, config, seed, cache, lines)
    tables = [numeric(table, study.NAME) for table in study.tables(config, outputs)]
    checks = [(str(what), bool(passed)) for what, passed in study.checks(config, outputs)]
    figures = study.figures(config, outputs)
    results = {"study": study.NAME, "title": study.TITLE, "full_run": study.FULL_RUN,
               "configuration": config, "seed": seed, "quick": bool(quick),
               **report.environment(), "started": started,
               "seconds": time.perf_counter() - began, "stages": stages,
               "tables": [report.table_json(table) for table in tables],
               "checks": [{"check": what, "passed": passed} for what, passed in checks],
               "figures": sorted(f"{report.FIGURES}/{name}.png" for name in figures)}
    report.write(out_dir, results, tables, figures)
    failed = [what for what, passed in checks if not passed]
    if quick and failed:
        raise ChecksFailed(f"{study.NAME}: {len(failed)} of {len(checks)} checks failed in "
                           f"the quick run: {'; '.join(failed)} (results written to "
                           f"{out_dir})")
    return results
