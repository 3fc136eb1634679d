"""Where progress bars and log lines go: on the terminal when ``run_all.py`` executes a notebook, so the
saved notebook holds results only; in the notebook in interactive use (JupyterLab).

``run_all.py`` sets ``FEWDIMS_HEADLESS=1`` for its kernels. A kernel forwards everything written to
file descriptor 2 into the notebook (ipykernel captures the descriptor, so even ``sys.__stderr__``
lands there); it keeps a copy of the original descriptor, inherited from papermill's process, which is
run_all's terminal. In a headless kernel the package points ``sys.stderr`` at that copy when it is
first imported, before any of its modules creates a progress bar or a log handler: tqdm bars (plain
text, never widgets), the package's log lines and warnings all go to the terminal.
"""
from __future__ import annotations

import os
import sys
import warnings

HEADLESS = "FEWDIMS_HEADLESS"


def in_headless_kernel() -> bool:
    """Inside a kernel that ``run_all.py`` started (not its worker processes, which are no kernels)."""
    return os.environ.get(HEADLESS) == "1" and "ipykernel" in sys.modules


def terminal_stream():
    """A text stream to the kernel process's own stderr (the terminal), which the notebook never sees."""
    original = getattr(sys.stderr, "_original_stdstream_copy", None)
    if original is None:  # the kernel does not capture descriptor 2: sys.__stderr__ is the terminal
        return sys.__stderr__
    return open(os.dup(original), "w", buffering=1, encoding="utf-8", errors="replace")


def route_to_terminal() -> bool:
    """In a headless kernel, send stderr (progress bars, log lines, warnings) to the terminal, once;
    elsewhere do nothing. True when routed."""
    if not in_headless_kernel() or getattr(sys.stderr, "fewdims_terminal", False):
        return False
    stream = terminal_stream()
    try:
        stream.fewdims_terminal = True
    except AttributeError:
        pass
    sys.stderr = stream
    with warnings.catch_warnings():  # no notebook widgets here: the bars are text on the terminal
        warnings.simplefilter("ignore")
        import tqdm.auto
        import tqdm.std
    tqdm.auto.tqdm = tqdm.std.tqdm
    return True
