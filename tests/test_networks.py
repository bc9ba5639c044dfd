"""Every registered network: shapes, range, odd sizes, gradients; the paper net's size."""

from __future__ import annotations

import pytest
import torch

from dip_cli.networks import NETWORKS, build_network, count_parameters, make_input, size_multiple

SMALL = {"channels_down": [8, 8, 8], "upsample": "bilinear"}
ENCODER_DECODERS = {"skip", "hourglass", "unet"}  # 3 levels of SMALL: sizes a multiple of 8


def small(kind: str, height: int, width: int) -> dict:
    """Small options for each registered kind (the direct pixel image needs its size)."""
    if kind in ENCODER_DECODERS:
        return SMALL
    return {"resnet": {"channels": 8, "blocks": 2}, "pixel-mlp": {"channels": 8, "layers": 2}}.get(
        kind, {"height": height, "width": width}
    )


@pytest.mark.parametrize("kind", sorted(NETWORKS))
@pytest.mark.parametrize(("height", "width"), [(16, 16), (24, 40), (19, 33)])
def test_forward_shape_range_and_gradients(kind, height, width):
    torch.manual_seed(0)
    net = build_network(kind, 4, 3, **small(kind, height, width))
    z = torch.rand(1, 4, height, width) * 0.1
    out = net(z)
    assert out.shape[:2] == (1, 3)
    # Odd sizes come out within one size multiple (skip branches crop, hourglasses do not);
    # the fit loop pads z to the multiple and crops the output, so it never sees this.
    assert abs(out.shape[2] - height) < size_multiple(net)
    assert abs(out.shape[3] - width) < size_multiple(net)
    assert out.min() >= 0 and out.max() <= 1
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_padded_sizes_come_back_exactly(kind):
    net = build_network(kind, 2, 1, **small(kind, 24, 40))
    assert size_multiple(net) == (8 if kind in ENCODER_DECODERS else 1)
    assert net(torch.rand(1, 2, 24, 40)).shape == (1, 1, 24, 40)


def test_paper_skip_net_has_the_papers_size():
    net = build_network("skip", 32, 3)  # 5 levels x 128 channels, 4 skip channels
    assert count_parameters(net) == pytest.approx(2.22e6, rel=0.01)


def test_hourglass_has_no_skip_branches():
    net = build_network("hourglass", 2, 3, channels_down=[8, 8])
    assert all(level.skip is None for level in [net.body, net.body.inner])


def test_inputs():
    generator = torch.Generator().manual_seed(0)
    noise = make_input("noise", 5, 6, 7, generator)
    assert noise.shape == (1, 5, 6, 7) and noise.min() >= 0 and noise.max() <= 0.1
    grid = make_input("meshgrid", 2, 3, 5, generator)
    assert grid[0, 0, 0].tolist() == [0, 0.25, 0.5, 0.75, 1] and grid[0, 1, :, 0].tolist() == [0, 0.5, 1]


def test_unknown_network_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: hourglass, pixel-mlp, pixels, resnet, skip, unet"):
        build_network("transformer", 1, 1)


def test_pixel_mlp_has_no_spatial_prior():
    """Permuting the input code's pixels permutes the output's the same way (eval-mode BN)."""
    torch.manual_seed(0)
    net = build_network("pixel-mlp", 4, 3, channels=8, layers=2).eval()
    z = torch.rand(1, 4, 6, 5)
    order = torch.randperm(30)
    shuffled = z.flatten(2)[..., order].reshape(z.shape)
    assert torch.allclose(net(shuffled).flatten(2), net(z).flatten(2)[..., order], atol=1e-6)


def test_pixels_net_ignores_its_input_and_checks_the_size():
    net = build_network("pixels", 4, 3, height=5, width=6)
    assert torch.equal(net(torch.rand(1, 4, 5, 6)), net(torch.zeros(1, 4, 5, 6)))
    with pytest.raises(ValueError, match="input"):
        net(torch.rand(1, 4, 6, 6))


@pytest.mark.parametrize("threads", [1, 2])
def test_pointwise_conv_matches_a_1x1_convolution(threads):
    """The fast 1x1 path (one thread, channels-last) computes what nn.Conv2d does, gradients too,
    and keeps nn.Conv2d's parameters, so checkpoints load either way."""
    from dip_cli.networks import PointwiseConv

    torch.manual_seed(0)
    fast, plain = PointwiseConv(8, 3, 1), torch.nn.Conv2d(8, 3, 1)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 8, 13, 17).to(memory_format=torch.channels_last)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        outputs, grads = [], []
        for conv in (fast, plain):
            xi = x.clone().requires_grad_(True)
            out = conv(xi)
            (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
            outputs.append(out)
            grads.append((xi.grad, conv.weight.grad, conv.bias.grad))
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert outputs[0].is_contiguous(memory_format=torch.channels_last)
    assert list(fast.state_dict()) == ["weight", "bias"]
