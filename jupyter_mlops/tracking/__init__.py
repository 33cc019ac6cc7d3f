"""Talking to the tracking store. The only package that imports MLflow."""
