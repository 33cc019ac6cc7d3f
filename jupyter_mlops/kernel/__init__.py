"""Adapters that live in the IPython kernel: magics and widgets."""
