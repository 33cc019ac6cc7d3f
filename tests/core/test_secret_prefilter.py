"""The masker's pre-filter never skips a line in which detect-secrets finds what we mask.

Skipping the detector on most lines is what keeps masking cheap; it must not cost a
secret. Hypothesis builds lines from code-like pieces and secret-like tokens, and the
detector itself is the judge.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_mlops.core.secrets import _detector_findings, _detector_settings, may_hold_secret

SECRETS = [
    'aws_key = "AKIAIOSFODNN7EXAMPLE"',
    "token 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",
    "slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    'password = "correct horse battery staple"',
    "postgres://admin:s3cr3tPassw0rd@db.example.com/prod",
    "-----BEGIN RSA PRIVATE KEY-----",
    'blob = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8="',
    "AKCp8jQ8aLpqhXgS5dy7aBcDe",
    "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "sk-proj-abcdefghijklmnopqrstT3BlbkFJabcdefghijklmnopqrst",
]


@pytest.mark.parametrize("line", SECRETS)
def test_lines_with_secrets_are_scanned(line: str) -> None:
    assert may_hold_secret(line)


PIECES = st.sampled_from(
    [
        " ",
        "=",
        "(",
        ")",
        '"',
        "'",
        ",",
        ".",
        ":",
        "/",
        "_",
        "-",
        "@",
        "+",
        "x",
        "lr",
        "model",
        "precision",
        "float",
        "0.8123456789",
        "64",
        "True",
        "LogisticRegression",
        "AKIA",
        "ghp_",
        "xoxb-",
        "sk_live_",
        "eyJ",
        "abcdefghij",
        "ABCDEFGHIJKLMNOP",
        "Zm9vYmFy",
        "0123456789abcdef",
        "q7Z",
        "K9x",
        "://",
        "AKC",
        "AP",
        "--",
        "--no-snapshot",
        "glpat-",
        "sq0atp-",
        "SK",
        "-step",
    ]
)
LINES = st.lists(PIECES, min_size=1, max_size=14).map("".join)


@settings(max_examples=600, deadline=None)
@given(LINES)
def test_skipped_lines_have_nothing_to_mask(line: str) -> None:
    if may_hold_secret(line):
        return
    with _detector_settings():
        assert _detector_findings(line) == [], line


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_skipped_arbitrary_text_has_nothing_to_mask(line: str) -> None:
    if may_hold_secret(line):
        return
    with _detector_settings():
        assert _detector_findings(line) == [], line
