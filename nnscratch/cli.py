"""The ``nnscratch`` command."""

import argparse
import platform

import numpy as np

import nnscratch
from nnscratch import backend


def info():
    """What this machine offers nnscratch: versions, BLAS threads, CuPy and the GPU."""
    lines = [f"nnscratch {nnscratch.__version__}",
             f"python {platform.python_version()}, numpy {np.__version__}"]
    try:
        from threadpoolctl import threadpool_info   # installed with scikit-learn
        for pool in threadpool_info():
            lines.append(f"BLAS: {pool.get('internal_api')} ({pool.get('threading_layer')}), "
                         f"{pool.get('num_threads')} threads")
    except ImportError:
        lines.append("BLAS: threadpoolctl not installed, thread count unknown")
    if backend.cupy is None:
        lines.append("GPU backend: unavailable (install CuPy: pip install 'nnscratch[gpu]', "
                     "and a CUDA GPU is needed)")
    else:
        cupy = backend.cupy
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        lines.append(f"GPU backend: cupy {cupy.__version__}, device 0: {name}")
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(prog="nnscratch", description=nnscratch.__doc__)
    parser.add_argument("--version", action="version", version=f"nnscratch {nnscratch.__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("info", help="versions, BLAS threads, CuPy and GPU availability")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "info":
        print(info())
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
