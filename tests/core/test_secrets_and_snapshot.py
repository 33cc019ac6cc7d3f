"""Secret masking and content-addressed snapshots."""

from __future__ import annotations

import copy

from jupyter_mlops.core.secrets import MASK, SecretMasker
from jupyter_mlops.core.snapshot import normalize_notebook, prepare_snapshot


def notebook(source: str, output: str = "", *, run_at: str = "2026-01-01") -> dict:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"papermill": {"start_time": run_at}},
        "cells": [
            {
                "cell_type": "code",
                "id": "c1",
                "execution_count": 1,
                "source": source,
                "metadata": {"execution": {"iopub.execute_input": run_at}},
                "outputs": [{"output_type": "stream", "name": "stdout", "text": [output]}],
            }
        ],
    }


def test_env_secrets_url_passwords_and_detected_keys_are_masked() -> None:
    masker = SecretMasker(environ={"MY_API_TOKEN": "tok-123456789", "HOME": "/root"})
    text = masker.mask(
        "token tok-123456789\nhttps://alice:pw12345@host/x?token=abcdef\n"
        "aws = 'AKIAIOSFODNN7EXAMPLE'\nhome /root\n"
    )
    assert "tok-123456789" not in text and "pw12345" not in text and "abcdef" not in text
    assert "AKIAIOSFODNN7EXAMPLE" not in text
    assert "home /root" in text
    assert masker.masked_count == 4


def test_run_ids_and_plain_words_are_not_masked() -> None:
    masker = SecretMasker(environ={})
    line = "run 0f1e2d3c4b5a69788796a5b4c3d2e1f0 Authorization Bearer done\n"
    assert masker.mask(line) == line


def test_secret_named_params_are_masked_whole() -> None:
    masker = SecretMasker(environ={})
    assert masker.mask_param("db_password", "x") == MASK
    assert masker.mask_param("lr", 0.1) == 0.1


def test_snapshot_hash_ignores_volatile_metadata_and_masks() -> None:
    masker = SecretMasker(environ={"SECRET_KEY": "very-secret-value"})
    first = prepare_snapshot(notebook("x = 1", "very-secret-value"), masker)
    again = prepare_snapshot(notebook("x = 1", "very-secret-value", run_at="2027-05-05"), masker)
    changed = prepare_snapshot(notebook("x = 2", "very-secret-value"), masker)
    assert first == again
    assert first[0] != changed[0]
    assert b"very-secret-value" not in first[1] and MASK.encode() in first[1]


def test_normalize_does_not_modify_its_input() -> None:
    nb = notebook(["a = 1\n", "b = 2"])
    before = copy.deepcopy(nb)
    normalized = normalize_notebook(nb)
    assert nb == before
    assert normalized["cells"][0]["source"] == "a = 1\nb = 2"
    assert "execution" not in normalized["cells"][0]["metadata"]


def test_author_names_are_not_secrets_but_auth_values_are() -> None:
    masker = SecretMasker(
        environ={"GIT_AUTHOR_NAME": "Ada Lovelace", "HUB_AUTH": "hub-auth-value-123"},
        use_detector=False,
    )
    text = masker.mask("by Ada Lovelace with hub-auth-value-123")
    assert text == f"by Ada Lovelace with {MASK}"
