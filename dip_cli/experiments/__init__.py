"""Side experiments: evidence that DIP's prior is in the network's structure, not in data.

Each module exposes ``Config`` (the default settings), ``QUICK`` (overrides for a small run,
used by the tests) and ``run(cfg, progress=None) -> Result``. Modules are imported on demand:
some pull in torch, scikit-learn or matplotlib.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from types import ModuleType

EXPERIMENTS = {
    "fit-curves": "dip_cli.experiments.fit_curves",
    "random-labels": "dip_cli.experiments.random_labels",
    "architectures": "dip_cli.experiments.architectures",
    "jpeg-timeline": "dip_cli.experiments.jpeg_timeline",
    "random-weights": "dip_cli.experiments.random_weights",
    # What the optimiser and the loss landscape contribute: the other side of the argument.
    "loss-surface": "dip_cli.experiments.loss_surface",
    "optimizers": "dip_cli.experiments.optimizers",
    "sharpness": "dip_cli.experiments.sharpness",
    "information-plane": "dip_cli.experiments.information_plane",
    "random-features": "dip_cli.experiments.random_features",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(EXPERIMENTS[name])


def make_config(name: str, quick: bool = False, **given):
    """The experiment's defaults (or its quick version), with the options given replacing them."""
    module = load(name)
    config = module.Config()
    if quick:
        config = replace(config, **module.QUICK)
    return replace(config, **{k: v for k, v in given.items() if v is not None})
