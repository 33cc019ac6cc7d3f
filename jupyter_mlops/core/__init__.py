"""The pure core: plain values in, plain values or typed errors out.

Nothing here imports IPython, tornado or jupyter_server (a test enforces it), nor
MLflow (only ``jupyter_mlops.tracking`` talks to MLflow).
"""
