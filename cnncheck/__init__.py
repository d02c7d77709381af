"""cnncheck: gradient checks for numpy convolution and pooling layers."""
__version__ = "0.1.0"

from cnncheck.api import Report, check, check_file  # noqa: E402

__all__ = ["Report", "check", "check_file", "__version__"]
