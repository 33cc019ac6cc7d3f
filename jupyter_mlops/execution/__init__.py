"""Executing notebooks as tracked runs (papermill) and fanning them out (local, Dask)."""
