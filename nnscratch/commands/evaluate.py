"""``nnscratch evaluate RUN_DIR``: accuracy, per-class precision/recall/F1 and a confusion
matrix of a trained run, written beside it (evaluation_SPLIT.json, confusion_matrix_SPLIT.png).
"""

import json
from pathlib import Path

import numpy as np

from nnscratch import backend, data, metrics, plots
from nnscratch.commands.options import PATH
from nnscratch.commands.run_folder import load_run
from nnscratch.files import atomic_write, refuse_unwritable


def add_arguments(parser):
    parser.add_argument("run", type=PATH, help="the --out folder of `nnscratch train`")
    parser.add_argument("--split", default="test", choices=tuple(data.SPLITS),
                        help="the images to evaluate on (default test)")
    parser.add_argument("--dataset", choices=data.DATASETS,
                        help="default: the dataset it was trained on")


def run(args):
    """Evaluate the run ``args.run`` on ``args.split``: print the metrics, write them beside it."""
    folder = Path(args.run)
    model, config, dataset = load_run(folder, args.dataset)
    refuse_unwritable(folder)
    x, y = data.load(dataset, args.split, classes=config["classes"])
    report = metrics.classification_report(y, backend.to_numpy(model.predict(x)),
                                           model.logits(x[:1]).shape[1])
    report.update(split=args.split, dataset=dataset)
    atomic_write(folder / f"evaluation_{args.split}.json", json.dumps(report, indent=2))
    plots.confusion_matrix(np.array(report["confusion_matrix"]),
                           folder / f"confusion_matrix_{args.split}.png")
    print(f"{config['model']} on {report['dataset']} {args.split} ({report['n']} images): "
          f"accuracy {report['accuracy']:.4f}")
    print("class  precision  recall     f1")
    for k, (p, r, f) in enumerate(zip(report["precision"], report["recall"], report["f1"])):
        print(f"{k:>5}  {p:9.4f}  {r:6.4f}  {f:6.4f}")
    print(f"wrote {folder}/evaluation_{args.split}.json and confusion_matrix_{args.split}.png")
