"""A single-neuron (logistic regression) cat/non-cat classifier, as a staged pipeline."""

__version__ = "0.1.0"


class PipelineError(Exception):
    """A problem with the user's input: the CLI prints it as one line, without a traceback."""
