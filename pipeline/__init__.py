"""A single-neuron (logistic regression) cat/non-cat classifier, as a staged pipeline."""

__version__ = "0.1.0"

# the library surface, imported on first use: the CLI never pays for scikit-learn (docs/python.md)
_LAZY = {"Neuron": "estimator", "load_run": "library", "load_images": "library", "load_folder": "library"}
__all__ = ["PipelineError", *_LAZY]


class PipelineError(Exception):
    """A problem with the user's input: the CLI prints it as one line, without a traceback."""


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"pipeline.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
