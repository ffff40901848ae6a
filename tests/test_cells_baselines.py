"""The papers' remaining baselines: sru-stat, eurnn, goru and transformer (issue 9).

The shared contract (shapes, float64, resets, chunking, gradcheck) is checked for them in
test_cells_contract.py. Here each cell is checked against facts computed another way: the SRU's
equations and moving averages in numpy, the orthogonal transitions against an explicit product of
2x2 Givens rotations (also after training steps), and the Transformer against PyTorch's own
``nn.TransformerEncoderLayer`` with a mask built by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from agents.cells import make_cell, reset_state
from agents.cells.unitary import GivensRotations, modrelu

F64 = torch.float64


def randn(*shape, seed=0, dtype=F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def relu(x):
    return np.maximum(x, 0.0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def params(cell) -> dict[str, np.ndarray]:
    return {name: p.detach().numpy().copy() for name, p in cell.named_parameters()}


# ----------------------------------------------------------------------------------------------
# sru-stat
# ----------------------------------------------------------------------------------------------


def test_sru_equations_recomputed_in_numpy():
    """Oliva et al.'s equations, one statistic per decay rate, with an episode start in between."""
    alphas = (0.0, 0.5, 0.9)
    torch.manual_seed(0)
    cell = make_cell("sru-stat", 3, 4, phi_size=3, r_size=2, alphas=alphas).to(F64)
    steps, batch = 5, 2
    x = randn(steps, batch, 3)
    mu0 = randn(batch, 9, seed=1).abs()
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[2, 1] = True
    out, mu = cell(x, mu0, resets)

    p = params(cell)
    w_x, w_p = p["features.weight"][:, :3], p["features.weight"][:, 3:]
    for b in range(batch):
        stats = [mu0[b, 3 * i : 3 * (i + 1)].numpy() for i in range(len(alphas))]
        for t in range(steps):
            if resets[t, b]:
                stats = [np.zeros(3) for _ in alphas]
            r = relu(p["summary.weight"] @ np.concatenate(stats) + p["summary.bias"])
            phi = relu(w_x @ x[t, b].numpy() + w_p @ r + p["features.bias"])
            stats = [a * s + (1 - a) * phi for a, s in zip(alphas, stats)]
            o = relu(p["output.weight"] @ np.concatenate(stats) + p["output.bias"])
            np.testing.assert_allclose(out[t, b].detach().numpy(), o, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(mu[b].detach().numpy(), np.concatenate(stats), rtol=1e-12, atol=1e-12)


def test_sru_statistics_are_exponential_moving_averages():
    """With constant features phi = c, the statistic at rate a after t steps from 0 is c (1 - a^t)."""
    alphas = (0.0, 0.5, 0.9, 0.99)
    cell = make_cell("sru-stat", 2, 3, phi_size=4, r_size=2, alphas=alphas).to(F64)
    c = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=F64)
    with torch.no_grad():
        cell.features.weight.zero_()
        cell.features.bias.copy_(c)
    steps = 30
    _, mu = cell(randn(steps, 2, 2))
    for i, a in enumerate(alphas):
        expected = (c * (1 - a**steps)).expand(2, 4)
        torch.testing.assert_close(mu[:, 4 * i : 4 * (i + 1)], expected, rtol=1e-12, atol=1e-12)


def test_sru_paper_budgets():
    """The NRU paper's settings (docs/nru.md#experiments-and-settings) have the parameter counts of the SRU's layer sizes."""
    def expected(i, h, phi, r, n_alpha):
        stats = n_alpha * phi
        return (stats * r + r) + ((i + r) * phi + phi) + (stats * h + h)

    copy = make_cell("sru-stat", 10, 60)  # defaults: phi 55, r 16, five rates
    assert sum(p.numel() for p in copy.parameters()) == expected(10, 60, 55, 16, 5)
    psmnist = make_cell("sru-stat", 1, 150, phi_size=155, r_size=50)
    assert sum(p.numel() for p in psmnist.parameters()) == expected(1, 150, 155, 50, 5)
    assert copy.alphas == (0.0, 0.5, 0.9, 0.99, 0.999)


@pytest.mark.parametrize("alphas", [(), (1.0,), (-0.1, 0.5), "0.5", (True,), 0.9])
def test_sru_rejects_bad_alphas(alphas):
    with pytest.raises(ValueError, match="alphas"):
        make_cell("sru-stat", 2, 3, alphas=alphas)


def test_sru_rejects_bad_sizes():
    with pytest.raises(ValueError, match="phi_size"):
        make_cell("sru-stat", 2, 3, phi_size=0)
    with pytest.raises(ValueError, match="r_size"):
        make_cell("sru-stat", 2, 3, r_size=1.5)


# ----------------------------------------------------------------------------------------------
# eurnn / goru
# ----------------------------------------------------------------------------------------------


def reference_pairs(size: int, layout: str, capacity: int) -> list[list[tuple[int, int]]]:
    """The layouts written out independently: alternating neighbours, or butterflies i <-> i + 2^k."""
    if layout == "tunable":
        return [[(i, i + 1) for i in range(size - 1) if i % 2 == layer % 2] for layer in range(capacity)]
    return [
        [(i, i + 2**k) for i in range(size) if i + 2**k < size and not (i >> k) & 1]
        for k in range(math.ceil(math.log2(size)))
    ]


def givens_product(size: int, pairs: list[list[tuple[int, int]]], angles: np.ndarray) -> np.ndarray:
    """U = R_L ... R_1 with each R_l an explicit N x N matrix of 2x2 rotations [[c, -s], [s, c]]."""
    u, k = np.eye(size), 0
    for layer in pairs:
        rot = np.eye(size)
        for i, j in layer:
            c, s = math.cos(angles[k]), math.sin(angles[k])
            rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
            k += 1
        u = rot @ u
    assert k == len(angles)
    return u


ORTHOGONAL = [("eurnn", "tunable", 3), ("eurnn", "fft", None), ("goru", "tunable", 2), ("goru", "fft", None)]


@pytest.mark.parametrize("name,layout,capacity", ORTHOGONAL)
def test_transition_stays_orthogonal_after_training(name, layout, capacity):
    """A few Adam steps on a random loss move the angles; U = cell.transition_matrix() is still
    orthogonal to 1e-6 (float32 training) and equals the explicit product of Givens rotations."""
    size = 12  # not a power of 2: the FFT layout is the generalised one
    torch.manual_seed(0)
    cell = make_cell(name, 3, size, capacity=capacity, layout=layout)
    before = cell.rotation.angles.detach().clone()
    opt = torch.optim.Adam(cell.parameters(), lr=0.1)
    x, target = randn(8, 4, 3, dtype=torch.float32), randn(8, 4, size, seed=1, dtype=torch.float32)
    for _ in range(5):
        opt.zero_grad()
        out, _ = cell(x)
        ((out - target) ** 2).mean().backward()
        opt.step()
    angles = cell.rotation.angles.detach()
    assert (angles - before).abs().min() > 1e-3  # every angle was trained

    u = cell.transition_matrix().detach().double().numpy()
    np.testing.assert_allclose(u.T @ u, np.eye(size), atol=1e-6, rtol=0)
    pairs = reference_pairs(size, layout, capacity or 0)
    np.testing.assert_allclose(u, givens_product(size, pairs, angles.double().numpy()), atol=1e-6, rtol=0)


@pytest.mark.parametrize("layout,capacity", [("tunable", 1), ("tunable", 4), ("fft", None)])
@pytest.mark.parametrize("size", [1, 5, 8])
def test_rotation_layouts(layout, capacity, size):
    """Angle count, matrix structure (banded for tunable, dense after the FFT butterflies) and the
    two execution paths (layer by layer, explicit matrix) agree."""
    torch.manual_seed(1)
    rot = GivensRotations(size, layout, capacity).to(F64)
    pairs = reference_pairs(size, layout, capacity or 0)
    assert rot.angles.numel() == sum(len(layer) for layer in pairs)
    u = rot.matrix().detach().numpy()
    np.testing.assert_allclose(u, givens_product(size, pairs, rot.angles.detach().numpy()), atol=1e-12)
    if layout == "tunable":
        far = np.abs(np.subtract.outer(np.arange(size), np.arange(size))) > capacity
        assert np.all(u[far] == 0)  # each layer only mixes neighbours
    elif size == 8:
        assert np.all(np.abs(u) > 1e-12)  # log2(8) = 3 butterfly layers connect every pair of units
    h = randn(3, size)
    torch.testing.assert_close(rot(h), h @ rot.matrix().t())
    torch.testing.assert_close(rot.operator()(h), h @ rot.matrix().t())


def test_wide_rotation_uses_layers_with_the_same_result():
    """Above N = 200 L the operator applies the layers directly; values and gradients match the matrix."""
    rot = GivensRotations(400, "tunable", 2).to(F64)
    op = rot.operator()
    h = randn(2, 400)
    torch.testing.assert_close(op(h), h @ rot.matrix().t())
    g1 = torch.autograd.grad(op(h).pow(2).sum() + op(h)[:, 0].sum(), rot.angles)[0]
    g2 = torch.autograd.grad((h @ rot.matrix().t()).pow(2).sum() + (h @ rot.matrix().t())[:, 0].sum(), rot.angles)[0]
    torch.testing.assert_close(g1, g2)


def test_modrelu():
    z, b = randn(50), randn(50, seed=1)
    expected = np.sign(z.numpy()) * relu(np.abs(z.numpy()) + b.numpy())
    np.testing.assert_allclose(modrelu(z, b).numpy(), expected, rtol=1e-15)
    torch.testing.assert_close(modrelu(z, torch.zeros(50, dtype=F64)), z)  # bias 0: identity


def test_eurnn_equations():
    torch.manual_seed(2)
    cell = make_cell("eurnn", 3, 6, capacity=3).to(F64)
    with torch.no_grad():
        cell.bias.copy_(randn(6, seed=3) * 0.3)
    x, h0 = randn(4, 2, 3), randn(2, 6, seed=1)
    out, _ = cell(x, h0)
    p = params(cell)
    u = givens_product(6, reference_pairs(6, "tunable", 3), p["rotation.angles"])
    h = h0.numpy()
    for t in range(4):
        z = x[t].numpy() @ p["inputs.weight"].T + h @ u.T
        h = np.sign(z) * relu(np.abs(z) + p["bias"])
        np.testing.assert_allclose(out[t].detach().numpy(), h, rtol=1e-12, atol=1e-12)


def test_goru_equations_and_reference_init():
    torch.manual_seed(3)
    n = 6
    cell = make_cell("goru", 3, n, layout="fft")
    p = params(cell)
    # Reference-code initialisation: reset-gate bias 2, modReLU bias 0.01, small weights.
    np.testing.assert_array_equal(p["gates.bias"][:n], 2.0)
    np.testing.assert_array_equal(p["bias"], np.float32(0.01))
    assert np.abs(p["inputs.weight"]).max() <= 0.01 and np.abs(p["gates.weight"]).max() <= 0.01
    assert np.abs(p["gates.bias"][n:]).max() <= math.sqrt(3 / n)

    cell = cell.to(F64)
    with torch.no_grad():  # larger weights so that every term matters
        for param in cell.parameters():
            param.copy_(randn(*param.shape, seed=param.numel()))
    p = params(cell)
    x, h0 = randn(4, 2, 3), randn(2, n, seed=1)
    out, _ = cell(x, h0)
    u = givens_product(n, reference_pairs(n, "fft", 0), p["rotation.angles"])
    w_c, w_r, w_g = np.split(p["inputs.weight"], 3)
    v_r, v_g = np.split(p["gates.weight"], 2)
    b_r, b_g = np.split(p["gates.bias"], 2)
    h = h0.numpy()
    for t in range(4):
        xt = x[t].numpy()
        r = sigmoid(xt @ w_r.T + h @ v_r.T + b_r)
        g = sigmoid(xt @ w_g.T + h @ v_g.T + b_g)
        z = xt @ w_c.T + r * (h @ u.T)
        c = np.sign(z) * relu(np.abs(z) + p["bias"])
        h = g * h + (1 - g) * c
        np.testing.assert_allclose(out[t].detach().numpy(), h, rtol=1e-12, atol=1e-12)


def test_eurnn_without_input_is_a_pure_rotation():
    """With modReLU bias 0 and no input, h_t = U^t h_0: the norm is kept over 300 steps."""
    torch.manual_seed(4)
    cell = make_cell("eurnn", 2, 16, layout="fft").to(F64)
    h0 = randn(3, 16)
    out, h = cell(torch.zeros(300, 3, 2, dtype=F64), h0)
    torch.testing.assert_close(out.norm(dim=-1), h0.norm(dim=-1).expand(300, 3), rtol=1e-12, atol=0)
    expected = h0.numpy() @ np.linalg.matrix_power(cell.transition_matrix().detach().numpy(), 300).T
    np.testing.assert_allclose(h.detach().numpy(), expected, atol=1e-9)
    assert (h - h0).abs().max() > 0.1


@pytest.mark.parametrize("name", ["eurnn", "goru"])
def test_orthogonal_bad_kwargs(name):
    with pytest.raises(ValueError, match="layout"):
        make_cell(name, 2, 4, layout="dense")
    with pytest.raises(ValueError, match="capacity"):
        make_cell(name, 2, 4, capacity=0)
    with pytest.raises(ValueError, match="capacity"):
        make_cell(name, 2, 4, capacity=2, layout="fft")


# ----------------------------------------------------------------------------------------------
# transformer
# ----------------------------------------------------------------------------------------------


def reference_positions(resets: torch.Tensor, start: torch.Tensor) -> np.ndarray:
    steps, batch = resets.shape
    pos = np.zeros((steps, batch), dtype=np.int64)
    for b in range(batch):
        p = int(start[b])
        for t in range(steps):
            p = 0 if resets[t, b] else p
            pos[t, b] = p
            p += 1
    return pos


def sinusoid(pos: np.ndarray, width: int) -> np.ndarray:
    """Vaswani et al.'s encoding, laid out as [sin | cos] halves."""
    i = np.arange((width + 1) // 2)
    angle = pos[..., None] * 10000.0 ** (-2 * i / width)
    return np.concatenate([np.sin(angle), np.cos(angle)], -1)[..., :width]


def torch_reference(cell, x: torch.Tensor, resets: torch.Tensor) -> torch.Tensor:
    """The cell's computation from a fresh state with PyTorch's encoder layers and a hand-built
    mask: query t sees key s iff s <= t, t - s < context and no episode starts in (s, t]."""
    steps, batch, _ = x.shape
    heads = cell.num_heads
    layers = []
    for block in cell.blocks:
        layer = nn.TransformerEncoderLayer(
            cell.hidden_size, heads, cell.feedforward_size, dropout=0.0, norm_first=True
        ).to(F64)
        with torch.no_grad():
            layer.self_attn.in_proj_weight.copy_(block.qkv.weight)
            layer.self_attn.in_proj_bias.copy_(block.qkv.bias)
            for mine, theirs in ((block.out, layer.self_attn.out_proj), (block.linear1, layer.linear1),
                                 (block.linear2, layer.linear2), (block.norm1, layer.norm1), (block.norm2, layer.norm2)):
                theirs.weight.copy_(mine.weight)
                theirs.bias.copy_(mine.bias)
        layers.append(layer)
    mask = torch.full((batch * heads, steps, steps), -math.inf, dtype=F64)
    for b in range(batch):
        for t in range(steps):
            for s in range(max(0, t - cell.context + 1), t + 1):
                if not resets[s + 1 : t + 1, b].any():
                    mask[b * heads : (b + 1) * heads, t, s] = 0.0
    pos = reference_positions(resets, torch.zeros(batch, dtype=torch.long))
    h = cell.embed(x) + torch.from_numpy(sinusoid(pos, cell.hidden_size))
    for layer in layers:
        h = layer(h, src_mask=mask)
    return cell.norm(h)


def transformer(**kwargs):
    torch.manual_seed(5)
    return make_cell("transformer", 3, 8, **{"num_heads": 2, "feedforward_size": 6, **kwargs}).to(F64)


def test_transformer_matches_torch_encoder_without_resets():
    cell = transformer(num_layers=2, context=64)
    x = randn(9, 3, 3)
    no_resets = torch.zeros(9, 3, dtype=torch.bool)
    out, _ = cell(x)
    torch.testing.assert_close(out, torch_reference(cell, x, no_resets))


@pytest.mark.parametrize("query_block", [1, 3, 256])
def test_transformer_window_and_resets_match_hand_built_mask(query_block):
    cell = transformer(num_layers=2, context=3)
    cell.query_block = query_block
    x = randn(10, 3, 3)
    resets = torch.zeros(10, 3, dtype=torch.bool)
    resets[0, 0] = resets[4, 1] = resets[5, 1] = resets[8, 2] = True
    out, _ = cell(x, resets=resets)
    torch.testing.assert_close(out, torch_reference(cell, x, resets))


def test_transformer_never_attends_across_an_episode_start():
    """Changing what came before an episode start (inputs, or the incoming state) changes nothing after it."""
    cell = transformer(num_layers=2, context=16)
    x = randn(10, 2, 3)
    resets = torch.zeros(10, 2, dtype=torch.bool)
    resets[4, 0] = True
    state = cell(randn(5, 2, 3, seed=7))[1]
    out, final = cell(x, state, resets)

    y = x.clone()
    y[:4, 0] = randn(4, 3, seed=8)
    out_y, final_y = cell(y, state, resets)
    torch.testing.assert_close(out_y[4:, 0], out[4:, 0], rtol=0, atol=0)
    torch.testing.assert_close(final_y[0][0], final[0][0], rtol=0, atol=0)
    assert (out_y[:4, 0] - out[:4, 0]).abs().max() > 1e-3  # the change is visible before the start
    torch.testing.assert_close(out_y[:, 1], out[:, 1], rtol=0, atol=0)  # other samples are untouched

    other_state = cell(randn(5, 2, 3, seed=9))[1]
    out_s, _ = cell(x, other_state, resets)
    torch.testing.assert_close(out_s[4:, 0], out[4:, 0], rtol=0, atol=0)
    assert (out_s[:4, 0] - out[:4, 0]).abs().max() > 1e-3


def test_transformer_receptive_field_is_layers_times_context():
    """With L layers and context c, output t depends on inputs t - L (c - 1) .. t only."""
    layers, context, steps = 2, 3, 9
    cell = transformer(num_layers=layers, context=context)
    x = randn(steps, 1, 3)
    y = x.clone()
    y[0] += 1.0
    diff = (cell(x)[0] - cell(y)[0]).abs().amax(dim=(1, 2))
    reach = layers * (context - 1)
    assert torch.all(diff[: reach + 1] > 1e-6)
    assert torch.all(diff[reach + 1 :] == 0)


def test_transformer_chunks_and_steps_equal_one_call():
    """Values, final state and gradients of a chunked run (state carried) equal one call."""
    cell = transformer(num_layers=2, context=4)
    x = randn(11, 3, 3).requires_grad_()
    resets = torch.zeros(11, 3, dtype=torch.bool)
    resets[2, 0] = resets[6, 1] = resets[7, 1] = True
    with torch.no_grad():
        state0 = cell(randn(2, 3, 3, seed=4))[1]
    out, (cache, position) = cell(x, state0, resets)
    grads = torch.autograd.grad(out.pow(2).sum() + cache.sum(), [x, *cell.parameters()])

    outs, state = [], state0
    for piece in (slice(0, 3), slice(3, 4), slice(4, 11)):
        o, state = cell(x[piece], state, resets[piece])
        outs.append(o)
    chunked = torch.cat(outs)
    torch.testing.assert_close(chunked, out)
    torch.testing.assert_close(state[0], cache)
    assert torch.equal(state[1], position)
    grads_chunked = torch.autograd.grad(chunked.pow(2).sum() + state[0].sum(), [x, *cell.parameters()])
    for a, b in zip(grads, grads_chunked):
        torch.testing.assert_close(a, b)

    state = state0
    with torch.no_grad():  # acting step by step, resetting by hand as a rollout would
        for t in range(11):
            state = reset_state(state, resets[t], cell.initial_state(3))
            o, state = cell.step(x[t].detach(), state)
            torch.testing.assert_close(o, out[t].detach())


def test_transformer_state_layout():
    """position counts the steps since the episode start; cache slots before the start are zero."""
    cell = transformer(num_layers=2, context=5)
    resets = torch.zeros(7, 2, dtype=torch.bool)
    resets[5, 0] = True
    cache, position = cell(randn(7, 2, 3), resets=resets)[1]
    assert cache.shape == (2, 2, 2, 4, cell.num_heads * cell.head_size)
    assert position.tolist() == [2, 7]
    assert torch.all(cache[0, :, :, :2] == 0) and torch.all(cache[0, :, :, 2:].abs().sum(-1) > 0)
    assert torch.all(cache[1].abs().sum(-1) > 0)


def test_transformer_dropout_only_in_training():
    cell = transformer(num_layers=1, context=8, dropout=0.5)
    x = randn(6, 2, 3)
    cell.eval()
    plain = transformer(num_layers=1, context=8)  # same seed: same weights, no dropout
    torch.testing.assert_close(cell(x)[0], plain(x)[0])
    cell.train()
    assert (cell(x)[0] - plain(x)[0]).abs().max() > 1e-3


def test_transformer_any_width_and_bad_kwargs():
    cell = make_cell("transformer", 2, 30, num_heads=4)  # 30 is not a multiple of 4
    assert cell.head_size == 8 and cell(torch.zeros(3, 1, 2))[0].shape == (3, 1, 30)
    for kwargs, name in (({"context": 0}, "context"), ({"num_heads": 0}, "num_heads"),
                         ({"num_layers": 0}, "num_layers"), ({"dropout": 1.5}, "dropout"),
                         ({"feedforward_size": 0}, "feedforward_size"), ({"head_size": 0}, "head_size"),
                         ({"positional_encoding": 1}, "positional_encoding")):
        with pytest.raises(ValueError, match=name):
            make_cell("transformer", 2, 8, **kwargs)
