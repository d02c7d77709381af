"""cnncheck: gradient checks for numpy convolution and pooling layers."""
__version__ = "0.1.0"
