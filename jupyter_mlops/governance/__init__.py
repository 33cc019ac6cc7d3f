"""Notebook versions, diffs and reviews: the services behind `diff`, `history` and `review`."""
