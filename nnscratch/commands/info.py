"""``nnscratch info``: what this machine offers nnscratch: versions, the BLAS and its threads
and kernels, CuPy and the GPU. Imports nothing heavy: ``info`` runs in a fresh interpreter in
well under a second."""

import platform

import nnscratch


def add_arguments(parser):
    """``info`` takes no options."""


def run(args):
    print(info())


def cpu_flags():
    """The processor's feature flags (Linux's /proc/cpuinfo), or an empty set."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def blas_hint(architecture, flags):
    """Advice when OpenBLAS runs older kernels than the processor supports, else None.

    OpenBLAS picks its kernels by processor model; a model newer than it knows gets a fallback.
    On our 2-core AMD Zen 5 test machine OpenBLAS 0.3.31 chose its Haswell (AVX2) kernels
    though the processor has AVX-512: with OPENBLAS_CORETYPE=SKYLAKEX the float32 product peak
    went from 247 to 466 GFLOP/s and a dnr_cnn input gradient from 86 to 67 ms."""
    if architecture in ("Haswell", "Zen") and "avx512f" in flags:
        return (f"  this processor has AVX-512 but OpenBLAS chose its {architecture} kernels: "
                "OPENBLAS_CORETYPE=SKYLAKEX set before Python starts may make matrix products "
                "up to twice as fast (benchmarks/README.md)")
    return None


def info():
    """What this machine offers nnscratch: versions, BLAS threads, CuPy and the GPU."""
    import numpy as np

    from nnscratch import backend
    lines = [f"nnscratch {nnscratch.__version__}",
             f"python {platform.python_version()}, numpy {np.__version__}"]
    try:
        from threadpoolctl import threadpool_info   # installed with scikit-learn
        flags = cpu_flags()
        for pool in threadpool_info():
            kernels = f", {pool['architecture']} kernels" if pool.get("architecture") else ""
            lines.append(f"BLAS: {pool.get('internal_api')} ({pool.get('threading_layer')}), "
                         f"{pool.get('num_threads')} threads{kernels}")
            hint = blas_hint(pool.get("architecture"), flags)
            if hint:
                lines.append(hint)
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
