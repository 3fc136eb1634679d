#!/usr/bin/env python
"""Cost of a subspace run's basis products, float32 basis against a bfloat16 copy (a lever not taken).

A re-parameterised layer (``subspace.SubspaceLayer``) computes V theta_t in its forward pass and
V^T g in its backward pass, reading its (d, D) basis twice per step; at d = 32 a MiniLM layer's basis
is 226 MB, so these two products are memory-bound and are what a subspace run costs over a full one.
This times both products through autograd, as the layer runs them, on one thread, for a random
orthonormal basis of one MiniLM layer's size: the package's float32 basis against the same basis
stored in bfloat16 (half the bytes; torch's matmul path, whose backward is a (1, D) x (D, d) product).
It also prints what bfloat16 storage costs in accuracy: the relative error of V theta_t and how far
the rounded basis is from orthonormal. The variants are timed in ``--repeats`` interleaved rounds,
each keeping its fastest. Writes ``benchmarks/results/basis_products.csv``.

    python benchmarks/basis_products.py [--repeats 5] [--dim 32]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from fewdims_helpers.setup import profiles
from fewdims_helpers.model.pretrained import pretrained_encoder
from fewdims_helpers.model.subspace import encoder_layers, flatten, random_basis

RESULTS = Path(__file__).resolve().parent / "results"


def step_seconds(rows: torch.Tensor, theta: torch.Tensor, grad: torch.Tensor, calls: int = 10) -> float:
    """Mean seconds of one forward product V theta and its backward V^T g, through autograd."""
    def step() -> None:
        theta.grad = None
        update = (theta.mean(0).to(rows.dtype) @ rows).float()
        update.backward(grad)

    step()
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls


def main(repeats: int, dim: int) -> None:
    torch.set_num_threads(1)
    setup = profiles.get_profile("default")
    encoder = pretrained_encoder(setup.model)
    layers, size = len(encoder_layers(encoder)), len(flatten(encoder_layers(encoder)[0]))
    rows = random_basis(size, dim, seed=0, layer_index=0).T.contiguous()  # (d, D), as the layer holds it
    variants = {"float32": rows, "bfloat16": rows.bfloat16()}
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(16, dim, generator=generator).requires_grad_()
    grad = torch.randn(size, generator=generator)
    timed = [{"basis": name, "round": round_, "seconds": step_seconds(basis, theta, grad)}
             for round_ in range(repeats) for name, basis in variants.items()]
    frame = pd.DataFrame(timed).groupby("basis", sort=False, as_index=False).agg(
        step_ms=("seconds", lambda s: 1e3 * s.min()), slowest_ms=("seconds", lambda s: 1e3 * s.max()))
    with torch.no_grad():
        exact = theta.mean(0) @ rows
        rounded = (theta.mean(0).bfloat16() @ variants["bfloat16"]).float()
        low = variants["bfloat16"].double()
        orthogonality = float((low @ low.T - torch.eye(dim, dtype=torch.float64)).abs().max())
    frame["update_relative_error"] = [0.0, float((rounded - exact).norm() / exact.norm())]
    frame["max_orthogonality_error"] = [float((rows.double() @ rows.double().T - torch.eye(dim, dtype=torch.float64))
                                              .abs().max()), orthogonality]
    frame["basis_mb"] = [rows.numel() * 4 / 1e6, rows.numel() * 2 / 1e6]
    steps = 50  # the default profile's optimizer steps per run
    frame["seconds_per_run"] = frame.step_ms * layers * steps / 1e3
    frame["dim"], frame["parameters_per_layer"], frame["repeats"] = dim, size, repeats
    for row in frame.itertuples():
        print(f"{row.basis}: {row.step_ms:.1f} ms per layer and step (fastest of {repeats}; slowest "
              f"{row.slowest_ms:.1f}), {row.basis_mb:.0f} MB per layer, about {row.seconds_per_run:.1f} s of a "
              f"{layers}-layer, {steps}-step run; V theta relative error {row.update_relative_error:.1e}, "
              f"max |V^T V - I| {row.max_orthogonality_error:.1e}")
    print(f"bfloat16 / float32 time: {frame.step_ms.iloc[1] / frame.step_ms.iloc[0]:.2f}")
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "basis_products.csv", index=False)
    print(f"wrote {RESULTS / 'basis_products.csv'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; each variant keeps its fastest")
    parser.add_argument("--dim", type=int, default=32, help="subspace dimension d (07's Table 1: 32)")
    args = parser.parse_args()
    main(args.repeats, args.dim)
