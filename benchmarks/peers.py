"""The same network in PyTorch: the equivalence oracle and the side-by-side's peer.

fnn keeps samples in rows and W_l: (n_in, n_out), so Z = A W + b; torch.nn.Linear keeps
weight: (n_out, n_in) and computes Z = A weightᵀ + bias. Copying Wᵀ into `weight` gives the
same function, and torch's `weight.grad` is then dJ/dWᵀ, i.e. fnn's dW transposed.

fnn's images are NHWC (samples, rows, columns, channels), torch's NCHW: Reshape becomes a view
then a permute to NCHW, Conv2D's K: (kh, kw, C_in, C_out) becomes weight: (C_out, C_in, kh, kw),
and Flatten permutes back to NHWC before flattening, so the rows meet the first Dense in fnn's
order.

torch is an optional peer (the `bench` extra): it is imported inside the functions, so this
module (which asv imports while discovering benchmarks) loads without it.
"""

from __future__ import annotations

import numpy as np

import fnn


def torch_mlp(params: fnn.MLP):
    """torch.nn.Sequential computing exactly fnn.forward(params, ·), in the params' dtype: each
    Dense a Linear holding copies of the weights (W_l transposed into weight), each activation
    its torch module (Dropout as torch's, which is the identity in eval mode, as fnn's without rng)."""
    import torch

    class Layout(torch.nn.Module):
        """x.reshape(m, *shape) (shape None: as it is), then .permute(*order): fnn's rows or NHWC
        to torch's NCHW, and back."""

        def __init__(self, shape, order):
            super().__init__()
            self.shape, self.order = shape, order

        def forward(self, x):
            return (x if self.shape is None else x.reshape(x.shape[0], *self.shape)).permute(*self.order)

    def module(layer):
        if isinstance(layer, fnn.Reshape):
            return Layout(layer.shape, (0, 3, 1, 2))
        if isinstance(layer, fnn.Flatten):
            return torch.nn.Sequential(Layout(None, (0, 2, 3, 1)), torch.nn.Flatten())
        if isinstance(layer, fnn.MaxPool2D):
            return torch.nn.MaxPool2d(layer.size, layer.stride or layer.size)
        if isinstance(layer, fnn.Conv2D):
            kh, kw, c_in, c_out = layer.K.shape
            if layer.padding == "same" and layer.stride != 1:
                raise TypeError("torch's padding='same' takes stride 1 only")
            conv = torch.nn.Conv2d(c_in, c_out, (kh, kw), stride=layer.stride, padding=layer.padding,
                                   dtype=torch.from_numpy(layer.K).dtype)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.K.transpose(3, 2, 0, 1))))
                conv.bias.copy_(torch.from_numpy(layer.b))
            return conv
        if isinstance(layer, fnn.Dense):
            n_in, n_out = layer.W.shape
            linear = torch.nn.Linear(n_in, n_out, dtype=torch.from_numpy(layer.W).dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.W.T)))
                linear.bias.copy_(torch.from_numpy(layer.b))
            return linear
        activations = {
            fnn.Relu: lambda: torch.nn.ReLU(),
            fnn.LeakyRelu: lambda: torch.nn.LeakyReLU(layer.alpha),
            fnn.Tanh: lambda: torch.nn.Tanh(),
            fnn.Sigmoid: lambda: torch.nn.Sigmoid(),
            fnn.Dropout: lambda: torch.nn.Dropout(layer.rate),
        }
        if type(layer) not in activations:
            raise TypeError(f"no torch counterpart for layer {type(layer).__name__}")
        return activations[type(layer)]()

    return torch.nn.Sequential(*map(module, params.layers))


def torch_loss(model, X, y, l2: float):
    """fnn's objective in torch: mean cross-entropy + (l2 / (2m)) Σ ||weight||², biases excluded.
    X: (m, n_0) tensor, y: (m,) int64 tensor -> scalar tensor. At l2 = 0 no penalty term is built."""
    import torch

    value = torch.nn.functional.cross_entropy(model(X), y)
    if not l2:
        return value
    penalty = sum(m.weight.square().sum() for m in model if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    return value + l2 / (2 * X.shape[0]) * penalty


def torch_value_and_grads(params: fnn.MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0) -> tuple[float, fnn.MLP]:
    """(J, dJ/dparams) by torch autograd (eval mode), returned in fnn's layout: an MLP of the
    params' layers, each Dense holding dW: (n_in, n_out) and db, the other layers themselves."""
    import torch

    model = torch_mlp(params).eval()
    value = torch_loss(model, torch.from_numpy(X), torch.from_numpy(y), l2)
    value.backward()
    def grad(layer, m):
        if isinstance(layer, fnn.Dense):
            return fnn.Dense(W=m.weight.grad.numpy().T.copy(), b=m.bias.grad.numpy().copy())
        if isinstance(layer, fnn.Conv2D):
            K = m.weight.grad.numpy().transpose(2, 3, 1, 0).copy()
            return fnn.Conv2D(K=K, b=m.bias.grad.numpy().copy(), stride=layer.stride, padding=layer.padding)
        return layer

    grads = [grad(layer, m) for layer, m in zip(params.layers, model)]
    return value.item(), fnn.MLP(tuple(grads))
