"""mlplab: multilayer perceptrons written from scratch in NumPy, and the experiments that teach how they learn."""

__version__ = "0.1.0"
