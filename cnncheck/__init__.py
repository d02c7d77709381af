"""cnncheck: gradient checks for numpy convolution and pooling layers."""
__version__ = "0.1.0"

__all__ = ["Report", "check", "check_file", "__version__"]


def __getattr__(name):
    """`cnncheck.check` and friends, imported on first use: the worker process imports
    cnncheck.sandbox and the protocols, never the judge."""
    if name in ("Report", "check", "check_file"):
        from cnncheck import api
        return getattr(api, name)
    raise AttributeError(f"module 'cnncheck' has no attribute {name!r}")
