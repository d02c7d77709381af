"""Reference convolution and pooling layers in the CS231n protocol.

Each layer comes as a forward/backward pair: `*_forward_*(...) -> (out, cache)` and
`*_backward_*(dout, cache) -> gradients`. The `_naive` pairs are the readable reference,
written with explicit loops; the `_fast` pairs compute the same thing with strided views
and one matrix product (conv) or one vectorized operation per kernel offset (pooling).

Every layer follows the same steps: unpack params, compute, build cache, return.
Geometry follows PyTorch: zero padding on both sides, output sizes rounded down
(H' = 1 + (H + 2 * pad - dilation * (HH - 1) - 1) // stride; up with a pooling's
ceil_mode), so input rows and columns past the last full window take no part in the output
and get zero gradient. `stride`, `pad` and `dilation` may each be an int or an [h, w] pair;
conv also takes groups, pad 'same' or 'valid' and b = None, average pooling
count_include_pad and divisor_override (see each layer's docstring and layers._geometry).
An empty batch (N = 0) gives empty outputs. No function modifies its inputs; outputs and gradients have
the dtype of the inputs.

Max pooling sends the gradient of a window to its first maximum in row-major window
order (np.argmax's convention), in the naive and the fast layers alike, so the two agree
exactly even on tied inputs.

Each layer kind lives in a module of its own, with its record (`cnncheck.layers.kind`);
this package lists the kinds. Adding one means one new module here and its tests.
"""
from __future__ import annotations

from cnncheck.layers import avg_pool, conv, im2col, max_pool
from cnncheck.layers.avg_pool import (avg_pool_backward_fast, avg_pool_backward_naive,  # noqa: F401
                                      avg_pool_forward_fast, avg_pool_forward_naive)
from cnncheck.layers.conv import (conv_backward_fast, conv_backward_naive,  # noqa: F401
                                  conv_forward_fast, conv_forward_naive)
from cnncheck.layers._geometry import _pair  # noqa: F401
from cnncheck.layers.im2col import (im2col_backward_fast, im2col_backward_naive,  # noqa: F401
                                    im2col_forward_fast, im2col_forward_naive)
from cnncheck.layers.kind import LayerKind
from cnncheck.layers.max_pool import (max_pool_backward_fast, max_pool_backward_naive,  # noqa: F401
                                      max_pool_forward_fast, max_pool_forward_naive)

KINDS: dict[str, LayerKind] = {m.KIND.name: m.KIND for m in (conv, max_pool, avg_pool, im2col)}
COMMANDS = tuple(dict.fromkeys(k.command for k in KINDS.values()))  # conv, pool, ...


def get(name: str) -> LayerKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown layer {name!r}: one of {', '.join(KINDS)}") from None


def of_command(command: str) -> list[LayerKind]:
    """The kinds a CLI command checks, its first kind the command's default."""
    return [k for k in KINDS.values() if k.command == command]
