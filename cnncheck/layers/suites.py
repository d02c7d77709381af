"""The pooling layers' default suite, shared by max and average pooling.

Small cases inside CS231n's contract, chosen so that each bug class fails a set of cases no
other class fails (see diagnose). The notebook's own cases come first.
"""
# name, x_shape, (pool_height, pool_width), stride, inputs
POOL = [
    ("notebook backward", (3, 2, 8, 8), (2, 2), 2, {}),
    ("notebook forward", (2, 3, 4, 4), (2, 2), 2, {"x": "linspace"}),
    ("3x3 stride 1", (2, 3, 6, 6), (3, 3), 1, {}),
    ("3x2 stride 1 on 6x5", (2, 2, 6, 5), (3, 2), 1, {}),
    ("3x3 stride 2", (2, 2, 7, 7), (3, 3), 2, {}),
    ("2x2 stride 2 on 4x6", (2, 3, 4, 6), (2, 2), 2, {}),
    ("2x3 stride 1", (2, 2, 5, 5), (2, 3), 1, {}),
]
POOL_SUITE = tuple((name, {"x_shape": x, "pool_height": k[0], "pool_width": k[1], "stride": s, "inputs": inputs})
                   for name, x, k, s, inputs in POOL)
POOL_DEFAULT = {"x_shape": (3, 2, 8, 8), "pool_height": 2, "pool_width": 2, "stride": 2, "seed": 231}
POOL_LINSPACE = {"x": (-0.3, 0.4)}
