"""Cap the threads of the OpenBLAS copies numpy and scipy load (what threadpoolctl does).

A build's dense steps (QR, SVD, matrix products) run in OpenBLAS, which starts one spinning
thread per core. On a small machine that serves requests at the same time, those threads take
the cores from the request threads, and under load they even slow the build itself (measured
on 2 busy cores: a 4,324 x 80 QR took 0.25-1 s with 2 threads, 0.02-0.03 s with one). OpenBLAS's
setting is process-wide, so the server keeps it at ``build_threads`` (1 by default) from its
first build on. Best effort: on a platform where the library cannot be found, nothing changes.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def _loaded_openblas() -> list[str]:
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    # FAISS's own OpenBLAS is the OpenMP build: faiss.omp_set_num_threads governs it.
    return sorted(p for p in paths if p.startswith("/") and "libopenblaso" not in p)


def limit_blas_threads(n: int) -> int:
    """Set every loaded numpy/scipy OpenBLAS to ``n`` threads; returns how many were set."""
    import numpy  # noqa: F401  (make sure the libraries are loaded)
    import scipy.linalg  # noqa: F401

    done = 0
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                done += 1
                break
    if not done:
        log.debug("no OpenBLAS found to limit to %d threads", n)
    return done
