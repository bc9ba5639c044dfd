"""`sharpness`: the two sharpness measures on known answers, Dinh's rescaling, the verdicts, a quick run."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from dip_cli.errors import InputError
from dip_cli.experiments import sharpness
from dip_cli.experiments.sharpness import Config, Rescaled, Run


def _cross_entropy(net, x, y):
    return lambda: torch.nn.functional.cross_entropy(net(x), y)


def test_power_iteration_finds_a_quadratics_top_eigenvalue():
    # f(θ) = ½ θᵀAθ with A = Q diag(λ) Qᵀ: the Hessian is A everywhere.
    eigenvalues = torch.tensor([5.0, 2.0, 1.0, 0.5, -0.3, 0.1], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    a = q @ torch.diag(eigenvalues) @ q.T
    theta = torch.randn(6, dtype=torch.float64, requires_grad=True)
    found = sharpness.top_eigenvalue(lambda: 0.5 * theta @ a @ theta, [theta], tol=1e-10)
    assert found == pytest.approx(5.0, rel=1e-6)


def test_power_iteration_matches_the_full_hessian_of_a_tiny_net():
    from torch.func import functional_call

    torch.manual_seed(0)
    net = sharpness.build_mlp(4, 6, 3).double()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=generator)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):  # near a minimum, where the top eigenvalue is the largest in magnitude
        loss = _cross_entropy(net, x, y)()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    names = [n for n, _ in net.named_parameters()]
    params = [p.detach() for p in net.parameters()]

    def loss_of(flat):
        chunks = flat.split([p.numel() for p in params])
        parts = {n: c.view(p.shape) for n, c, p in zip(names, chunks, params, strict=True)}
        return torch.nn.functional.cross_entropy(functional_call(net, parts, (x,)), y)

    hessian = torch.autograd.functional.hessian(loss_of, torch.cat([p.reshape(-1) for p in params]))
    exact = np.linalg.eigvalsh(hessian.numpy())
    found = sharpness.top_eigenvalue(_cross_entropy(net, x, y), list(net.parameters()), iters=2000, tol=1e-10)
    assert abs(exact[-1]) > abs(exact[0])  # the top eigenvalue is the dominant one here
    assert found == pytest.approx(exact[-1], rel=1e-4)


def test_epsilon_sharpness_of_a_quadratic_is_its_box_corner():
    # f = c + ½ Σ a_i (θ_i - m_i)² at θ = m: the largest rise in the box |δ_i| <= ε(|m_i| + 1) is
    # ½ Σ a_i ε² (|m_i| + 1)², at a corner.
    a = torch.tensor([3.0, 1.0, 0.2, 5.0], dtype=torch.float64)
    m = torch.tensor([0.0, -2.0, 4.0, 0.5], dtype=torch.float64)
    c, epsilon = 0.3, 1e-2
    theta = m.clone().requires_grad_(True)
    found = sharpness.epsilon_sharpness(lambda: c + 0.5 * (a * (theta - m) ** 2).sum(), [theta], epsilon)
    rise = 0.5 * float((a * (epsilon * (m.abs() + 1)) ** 2).sum())
    assert found == pytest.approx(100 * rise / (1 + c), rel=1e-9)
    assert torch.equal(theta.detach(), m)  # the parameters are put back


def test_rescaling_keeps_every_output_and_changes_the_sharpness():
    torch.manual_seed(0)
    net = sharpness.build_mlp(8, 16, 3)
    x, y = torch.randn(50, 8), torch.randint(0, 3, (50,))
    before = [p.detach().clone() for p in net.parameters()]
    base = sharpness.top_eigenvalue(_cross_entropy(net, x, y), list(net.parameters()))
    for alpha in (10.0, 0.1):
        scaled = sharpness.rescale(net, alpha)
        assert torch.allclose(scaled(x), net(x), rtol=0, atol=1e-5)
        assert sharpness.output_change(net, scaled, [x]) <= 1e-5
        assert not torch.allclose(scaled[0].weight, net[0].weight)  # the weights did change
        measured = sharpness.top_eigenvalue(_cross_entropy(scaled, x, y), list(scaled.parameters()))
        assert max(measured / base, base / measured) > 2  # measured ~18x (α=10) and ~3.7x (α=0.1)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))  # a copy


# --- verdicts on made-up measurements --------------------------------------------------------


def _runs(small_eig, large_eig, small_test, large_test, reached=True) -> list[Run]:
    runs = []
    for regime, batch, eigs, tests in (
        ("small", 32, small_eig, small_test),
        ("large", 1347, large_eig, large_test),
    ):
        for seed, (eig, test) in enumerate(zip(eigs, tests, strict=True)):
            runs.append(Run(regime, seed, batch, 20, reached, 0.01, 100.0, test, eig, 10 * eig))
    return runs


def _rescaled(eig_at_10: float, change: float) -> list[Rescaled]:
    eigs = {0.1: 40.0, 0.3: 8.0, 1.0: 2.0, 3.0: 6.0, 10.0: eig_at_10}
    return [Rescaled(alpha, eig, 5 * eig, change if alpha != 1 else 0.0) for alpha, eig in eigs.items()]


def test_judge_holds_when_the_papers_claims_do():
    runs = _runs([1.0, 1.2, 0.9], [3.0, 3.5, 2.8], [98.0, 97.5, 98.2], [96.0, 96.5, 97.0])
    figures, verdicts = sharpness.judge(runs, _rescaled(eig_at_10=60.0, change=2e-7))
    assert [v.held for v in verdicts] == [True, True, True, True]
    assert verdicts[0].measured == pytest.approx(3.0 / 1.0)  # ratio of the medians
    assert verdicts[1].measured == pytest.approx(98.0 - 96.5)
    assert verdicts[3].measured == pytest.approx(30.0)
    assert figures["small batch (32): top Hessian eigenvalue"] == pytest.approx(1.0)
    assert figures["large batch (1347): test accuracy (%)"] == pytest.approx(96.5)
    assert figures["rescaled α=10: max output change (ppm)"] == pytest.approx(0.2)


def test_judge_reports_claims_that_do_not_hold():
    runs = _runs([1.0, 1.2, 0.9], [1.5, 1.4, 1.6], [98.0, 97.5, 98.2], [97.9, 97.8, 98.0], reached=False)
    _, verdicts = sharpness.judge(runs, _rescaled(eig_at_10=15.0, change=1e-3))
    assert [v.held for v in verdicts] == [False, False, False, False]
    assert verdicts[0].measured == pytest.approx(1.5)
    assert verdicts[1].measured == pytest.approx(0.1)
    assert verdicts[2].measured == pytest.approx(1e-3)
    assert verdicts[3].measured == pytest.approx(7.5)
    assert "6 of 6 runs stopped short" in verdicts[0].note  # a run short of the loss target is said
    # A fall in sharpness counts as a change too.
    _, verdicts = sharpness.judge(runs, _rescaled(eig_at_10=0.1, change=0.0))
    assert verdicts[3].held and verdicts[3].measured == pytest.approx(20.0)


# --- the whole experiment, small ------------------------------------------------------------


@pytest.mark.parametrize("data", ["breast-cancer"])  # digits runs through the CLI's quick run
def test_quick_run_writes_results_csv_and_plot(tmp_path, data):
    steps = []
    cfg = replace(Config(), **sharpness.QUICK, data=data, out=tmp_path)
    result = sharpness.run(cfg, progress=lambda label, done, total: steps.append((done, total)))
    assert steps[-1] == (7, 7) and [d for d, _ in steps] == sorted(d for d, _ in steps)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["experiment"] == "sharpness" and results["settings"]["data"] == data
    assert len(results["verdicts"]) == 4 and results["all_held"] == all(
        v["held"] for v in results["verdicts"]
    )
    with open(result.paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(sharpness.COLUMNS)
    assert {r["regime"] for r in rows} == {"small", "large"} and len(rows) <= 2 * cfg.epochs
    plot = result.paths["plot"].read_bytes()
    assert plot[:8] == b"\x89PNG\r\n\x1a\n" and len(plot) < 150_000
    # Dinh's rescaling holds whatever the training: the function is the same.
    assert next(v for v in result.verdicts if v.finding == "rescaling keeps the function").held


@pytest.mark.parametrize(
    ("given", "message"),
    [({"data": "mnist"}, "--data must be one of digits, breast-cancer"), ({"seeds": 0}, "must be >= 1")],
)
def test_bad_config_is_an_input_error_before_anything_is_written(tmp_path, given, message):
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        sharpness.run(replace(Config(), **{**sharpness.QUICK, **given}, out=out))
    assert not out.exists()
