"""GPU discovery and disjoint GPU sets for local jobs."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import List, Mapping, Optional, Sequence, Tuple

GpuSet = Tuple[str, ...]

_NVIDIA_SMI_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)


def parse_visible_devices(value: str) -> List[str]:
    """Device ids of a `CUDA_VISIBLE_DEVICES` value, as CUDA reads it.

    CUDA stops at the first invalid entry, so `-1` (the usual way to hide all GPUs) ends the list.
    """
    ids: List[str] = []
    for item in value.split(","):
        item = item.strip()
        if not item or item.startswith("-") or item == "NoDevFiles":
            break
        ids.append(item)
    return ids


def nvidia_smi_gpus(timeout: float = 10.0) -> List[str]:
    """Indices of the GPUs that `nvidia-smi -L` lists; empty when it is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "-L"], capture_output=True, text=True, timeout=timeout, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return _NVIDIA_SMI_LINE.findall(out)


def detect_gpus(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """GPU ids this process may use: `CUDA_VISIBLE_DEVICES` when set, else `nvidia-smi -L`."""
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return parse_visible_devices(visible)
    return nvidia_smi_gpus()


def gpu_sets(gpus: Sequence[str], per_job: int) -> List[GpuSet]:
    """Split `gpus` into disjoint consecutive sets of `per_job` ids; leftover ids stay unused."""
    if per_job < 0:
        raise ValueError(f"gpus_per_job must be >= 0, got {per_job}")
    if per_job == 0:
        return []
    ids = [str(g) for g in gpus]
    if len(set(ids)) != len(ids):
        raise ValueError(f"GPU ids must be distinct, got {ids}")
    if per_job > len(ids):
        found = ", ".join(ids) if ids else "none"
        raise ValueError(
            f"gpus_per_job={per_job} but only {len(ids)} GPU(s) are available ({found}); "
            "set `gpus` to the device ids to use"
        )
    usable = len(ids) - len(ids) % per_job
    return [tuple(ids[i : i + per_job]) for i in range(0, usable, per_job)]


class GpuPool:
    """Hands out GPU sets so that jobs running at the same time never share a GPU."""

    def __init__(self, sets: Sequence[GpuSet]) -> None:
        self._free: List[GpuSet] = list(sets)
        self.size = len(self._free)

    def available(self) -> bool:
        return bool(self._free)

    def acquire(self) -> GpuSet:
        if not self._free:
            raise RuntimeError("no free GPU set")
        return self._free.pop(0)

    def release(self, gpu_set: GpuSet) -> None:
        if gpu_set in self._free:
            raise RuntimeError(f"GPU set {gpu_set} released twice")
        self._free.append(gpu_set)
