"""Golden runs: small fixed real-MNIST runs whose accuracy matrices guard every method's trajectory (manifest.yaml)."""

import os
import platform

# Float results depend on the code path a CPU takes: PyTorch's vectorised kernels and MKL pick AVX-512 where the
# processor has it and AVX2 otherwise, and the two round differently (the 3-task golden Finetuning run ends 1.6 points apart).
# The tests pin the AVX2 paths, which every x86-64 machine of the last decade has, so the golden files reproduce on
# any of them (docs/fidelity.md#golden-runs). Set before torch is imported; a value set by the user is kept.
CPU_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_cpu_kernels() -> None:
    """Use the AVX2 code paths of PyTorch, MKL and oneDNN on x86-64 (nothing elsewhere)."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        for key, value in CPU_KERNELS.items():
            os.environ.setdefault(key, value)
