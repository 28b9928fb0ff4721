"""frameduel: PyTorch vs TensorFlow, measured side by side."""

__version__ = "0.1.0"
