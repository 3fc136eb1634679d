"""Studies: one per notebook (01 token_wise ... 07 intrinsic, and the recipes' sizing), a module or a package each.
May import: every floor below it (root, stats/, model/, data/, training/, runs/, report/, setup/); no study another."""
