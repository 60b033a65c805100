"""What this machine can run, found without importing torch (a web process must not load
it: ~2 s and hundreds of MB): an NVIDIA GPU by the driver's files, bitsandbytes by its
package metadata. The pages use it to speak of the machine as it is ("runs on the CPU")
rather than of GPU workers and 4-bit loading that are not there. Pure: no Django.

It describes the machine the web server runs on, which is where ``make run`` starts the
workers too; a deployment with GPU workers elsewhere sets ``SIEVE_WORKER_ACCELERATOR``
(``cuda`` or ``cpu``) to say so."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec


@dataclass(frozen=True)
class Machine:
    gpu: bool
    gpu_names: tuple[str, ...]
    bitsandbytes: bool

    @property
    def four_bit(self) -> bool:
        return self.gpu and self.bitsandbytes

    @property
    def device_words(self) -> str:
        if not self.gpu:
            return "the CPU (no GPU on this machine)"
        names = ", ".join(self.gpu_names) or "a CUDA GPU"
        return f"the GPU ({names})"


def _gpu_names() -> tuple[str, ...] | None:
    """The NVIDIA GPUs the driver lists, or None when there is no driver."""
    folders = sorted(glob.glob("/proc/driver/nvidia/gpus/*"))
    if not folders and not glob.glob("/dev/nvidia[0-9]*"):
        return None
    names = []
    for folder in folders:
        try:
            with open(os.path.join(folder, "information"), encoding="utf-8") as f:
                for line in f:
                    if line.startswith("Model:"):
                        names.append(line.split(":", 1)[1].strip())
        except OSError:
            continue
    return tuple(names)


@lru_cache(maxsize=1)
def machine_detect() -> Machine:
    forced = os.environ.get("SIEVE_WORKER_ACCELERATOR", "").strip().lower()
    names = _gpu_names()
    gpu = forced == "cuda" if forced in ("cuda", "cpu") else names is not None
    return Machine(
        gpu=gpu,
        gpu_names=(names or ()) if gpu else (),
        bitsandbytes=find_spec("bitsandbytes") is not None,
    )
