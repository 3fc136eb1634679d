"""fewdims: training, masking, analysis and plotting code for the reproduction of Fukuhata & Kano
(2025), Matton & de Oliveira, and Zhang, Liu & Shao (2023). Import the modules you need, e.g.
``from fewdims_helpers.setup import profiles``; nothing heavy is imported here."""
from .terminal import route_to_terminal

route_to_terminal()  # run_all.py's kernels: progress bars and log lines on the terminal, not in the notebook
