"""Provenance: the package versions, git commit and machine recorded next to every result (the CPU's
bf16 path among them, since two CPUs with different bf16 kernels need not agree bitwise)."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..paths import HOST, REPO_ROOT

PACKAGES = ("torch", "transformers", "datasets", "numpy", "scikit-learn", "scipy", "pandas")


def environment() -> dict[str, Any]:
    """Package versions, git commit and the machine, recorded next to every result."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"versions": versions, "git_commit": commit, "host": HOST, "cpu": cpu_model(), "cpu_bf16": cpu_bf16_path(),
            "cpu_count": os.cpu_count(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def cpu_bf16_path() -> str:
    """The CPU's bf16 matrix path from /proc/cpuinfo flags: 'amx' (AMX-BF16), 'avx512_bf16' or 'none'.
    oneDNN picks its bf16 kernels by these flags, so two CPUs with different paths need not agree bitwise."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return "none"
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else "none"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
