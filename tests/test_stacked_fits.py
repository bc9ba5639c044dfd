"""The GPU check's stacked fits are the separate fits, computed together."""

from __future__ import annotations

import torch

from benchmarks.stacked_fits import fit_separately, fit_stacked, make_nets
from dip_cli.settings import NetworkSettings, Settings

# A shallow net: its deepest BatchNorm sees 8 x 8 values. (The JPEG net's 5 levels leave 2 x 2 at
# 64 px, where BatchNorm amplifies the last bit of rounding a thousandfold within a step.)
SHALLOW = Settings(network=NetworkSettings("skip", {"channels_down": [8, 16], "channels_skip": [4, 4]}))


def targets(count: int, side: int = 32) -> list[torch.Tensor]:
    return [torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(k)) for k in range(count)]


def test_stacked_fits_equal_separate_fits():
    # SGD: an update proportional to the gradient. (Adam divides by the gradient's size, so a
    # weight whose true gradient is zero - a bias before BatchNorm - moves by +-lr on the sign
    # of its rounding noise, in separate fits as in stacked ones.)
    fits = {"steps": 5, "lr": 0.05, "optimizer": "SGD"}
    separate = fit_separately(*make_nets(SHALLOW, 3, 32, "cpu"), targets(3), **fits)
    stacked = fit_stacked(*make_nets(SHALLOW, 3, 32, "cpu"), targets(3), **fits)
    assert stacked.shape == separate.shape == (3, 1, 3, 32, 32)
    torch.testing.assert_close(stacked, separate, atol=1e-5, rtol=1e-5)
    # The fits moved, each its own way.
    with torch.no_grad():
        start = torch.stack([net(z) for net, z in zip(*make_nets(SHALLOW, 3, 32, "cpu"), strict=True)])
    assert (stacked - start).abs().amax() > 0.05
    assert (stacked[0] - stacked[1]).abs().amax() > 0.05


def test_a_stacked_fit_leaves_the_nets_handed_in_unchanged():
    nets, codes = make_nets(SHALLOW, 2, 32, "cpu")
    fit_stacked(nets, codes, targets(2), steps=2, lr=0.1, optimizer="SGD")
    after = fit_separately(nets, codes, targets(2), steps=0, lr=0.0, optimizer="SGD")
    before = fit_separately(*make_nets(SHALLOW, 2, 32, "cpu"), targets(2), steps=0, lr=0.0, optimizer="SGD")
    torch.testing.assert_close(after, before)  # the nets handed in are not modified by a stacked fit
