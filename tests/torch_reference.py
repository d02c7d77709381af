"""PyTorch's conv, pooling and unfold called with a cnncheck geometry (a config's mapping:
pad, dilation, groups, ceil_mode, ...): the independent reference of the feature tests and
of PyTorch's own sample inputs. Callers skip when torch is absent."""
from __future__ import annotations

import warnings

import numpy as np

from cnncheck import layers


def _t(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


def torch_call(layer: str, g: dict, x, w=None, b=None):
    """PyTorch's functional layer on tensors, in its own output layout."""
    import torch

    F = torch.nn.functional
    if layer == "conv":
        with warnings.catch_warnings():  # 'same' with an even span: torch warns that it copies
            warnings.filterwarnings("ignore", "Using padding='same'", UserWarning)
            return F.conv2d(x, w, b, stride=_t(g["stride"]), padding=_t(g.get("pad", 0)),
                            dilation=_t(g.get("dilation", 1)), groups=g.get("groups", 1))
    k, s, p = (g["pool_height"], g["pool_width"]), _t(g["stride"]), _t(g.get("pad", 0))
    if layer == "max_pool":
        return F.max_pool2d(x, k, s, p, _t(g.get("dilation", 1)), g.get("ceil_mode", False))
    if layer == "avg_pool":
        return F.avg_pool2d(x, k, s, p, g.get("ceil_mode", False), g.get("count_include_pad", True),
                            g.get("divisor_override"))
    return F.unfold(x, k, _t(g.get("dilation", 1)), p, s)  # (N, C * FH * FW, H' * W')


def torch_layer(layer: str, g: dict, arrays: dict, dout):
    """PyTorch's output and gradients ({"dx": ..., "dw": ..., "db": ...} for the arrays given),
    float64 on the CPU, via (out * dout).sum().backward(), in cnncheck's layouts."""
    import torch

    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    out = torch_call(layer, g, tensors["x"], tensors.get("w"), tensors.get("b"))
    if layer == "im2col":  # the book's layout: one row per window
        out = out.transpose(1, 2).reshape(-1, out.shape[1])
    (out * torch.tensor(dout)).sum().backward()
    grads = {"d" + k: t.grad.numpy() if t.grad is not None else np.zeros(t.shape) for k, t in tensors.items()}
    return out.detach().numpy(), grads


def builtin_layer(layer: str, impl: str, g: dict, arrays: dict, dout):
    """cnncheck's naive or fast layer: output and gradients, as torch_layer gives them."""
    forward, backward = getattr(layers.get(layer), impl)
    param = {k: v for k, v in g.items() if k != "bias"}  # no bias is b = None
    args = [arrays["x"], arrays["w"], arrays.get("b")] if layer == "conv" else [arrays["x"]]
    out, cache = forward(*args, param)
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    return out, dict(zip(("d" + k for k in arrays), grads))


def random_arrays(layer: str, x_shape, w_shape=None, bias=True, rng=None) -> dict:
    rng = rng or np.random.default_rng(0)
    arrays = {"x": rng.standard_normal(x_shape)}
    if layer == "conv":
        arrays["w"] = rng.standard_normal(w_shape)
        if bias:
            arrays["b"] = rng.standard_normal(w_shape[0])
    return arrays


def assert_equal_to_torch(layer, impl, g, arrays, rtol=1e-10, atol=1e-12):
    """Forward and every gradient of the built-in layer equal torch's, to rounding."""
    __tracebackhide__ = True
    from numpy.testing import assert_allclose

    dout = np.random.default_rng(1).standard_normal(torch_call_out(layer, g, arrays).shape)
    ref_out, ref_grads = torch_layer(layer, g, arrays, dout)
    out, grads = builtin_layer(layer, impl, g, arrays, dout)
    assert out.shape == ref_out.shape, f"out shape {out.shape}, torch's {ref_out.shape}"
    assert_allclose(out, ref_out, rtol=rtol, atol=atol, err_msg=f"{layer} {impl} forward")
    assert set(grads) == set(ref_grads)
    for name, expected in ref_grads.items():
        assert grads[name].shape == expected.shape, name
        assert_allclose(grads[name], expected, rtol=rtol, atol=atol, err_msg=f"{layer} {impl} {name}")


def torch_call_out(layer, g, arrays):
    """The output's shape-bearing array (no gradients), in cnncheck's layout."""
    import torch

    with torch.no_grad():
        t = {k: torch.tensor(v) for k, v in arrays.items()}
        out = torch_call(layer, g, t["x"], t.get("w"), t.get("b"))
    return out.transpose(1, 2).reshape(-1, out.shape[1]).numpy() if layer == "im2col" else out.numpy()
