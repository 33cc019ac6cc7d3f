"""What may be registered as a model, and the data found next to it, decided without MLflow.

* **Flavour.** A scikit-learn estimator or pipeline is saved with MLflow's sklearn
  flavour; any other object with a ``predict`` method is wrapped as a pyfunc model;
  anything else is refused with a message naming what it is.
* **Input example.** When the notebook's data is at hand (a variable named ``X_test``,
  ``X_val``, ``X_valid``, ``X_train`` or ``X`` as wide as the model's input), its first
  rows become the model's input example, from which the signature is inferred.
* **Datasets.** The pandas DataFrames a tracked cell binds or reads are its run's dataset
  inputs (hashed, never copied into the store).

Types are recognised by their class's module, so nothing here imports scikit-learn or
pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_mlops.core.errors import UsageError

FLAVORS = ("auto", "sklearn", "pyfunc")
#: Names whose value, when as wide as the model's input, becomes its input example.
EXAMPLE_NAMES = ("X_test", "X_val", "X_valid", "X_train", "X")
EXAMPLE_ROWS = 5


def _module_of(cls: type) -> str:
    return getattr(cls, "__module__", "") or ""


def is_sklearn_estimator(obj: Any) -> bool:
    """Whether ``obj`` is an instance of a scikit-learn estimator class (or a subclass)."""
    return any(
        _module_of(cls).split(".")[0] == "sklearn" and cls.__name__ == "BaseEstimator"
        for cls in type(obj).__mro__
    )


def describe(obj: Any) -> str:
    """``a LogisticRegression`` / ``the class Foo``: what a value is, for messages."""
    if isinstance(obj, type):
        return f"the class {obj.__name__}"
    return f"a {type(obj).__name__}"


def detect_flavor(obj: Any, requested: str = "auto") -> str:
    """``sklearn`` or ``pyfunc`` for ``obj``; a ``UsageError`` saying why it is no model."""
    if requested not in FLAVORS:
        raise UsageError(f"--flavor must be one of {', '.join(FLAVORS)}, not {requested!r}")
    if isinstance(obj, type):
        raise UsageError(
            f"{describe(obj)} is a class, not a trained model: register an instance "
            "after calling its fit()"
        )
    if not callable(getattr(obj, "predict", None)):
        raise UsageError(
            f"{describe(obj)} is not a model: it has no predict() method (register a "
            "scikit-learn estimator or pipeline, or an object with predict(model_input))"
        )
    sklearn = is_sklearn_estimator(obj)
    if requested == "sklearn" and not sklearn:
        raise UsageError(f"--flavor sklearn: {describe(obj)} is not a scikit-learn estimator")
    if requested == "auto":
        return "sklearn" if sklearn else "pyfunc"
    return requested


def is_dataframe(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "DataFrame" and _module_of(cls).split(".")[0] == "pandas"


def pick_dataframes(names: Iterable[str], namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The pandas DataFrames among ``names`` in ``namespace`` (private names left out)."""
    return {
        name: namespace[name]
        for name in dict.fromkeys(names)
        if not name.startswith("_") and name in namespace and is_dataframe(namespace[name])
    }


def _width(value: Any) -> int | None:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int):
        return shape[1]
    return None


def _fits(model: Any, value: Any) -> bool:
    width = _width(value)
    if width is None or not getattr(value, "shape", (0,))[0]:
        return False
    names = getattr(model, "feature_names_in_", None)
    if names is not None and is_dataframe(value):
        return [str(n) for n in names] == [str(c) for c in value.columns]
    expected = getattr(model, "n_features_in_", None)
    return expected is None or expected == width


def first_rows(value: Any, rows: int = EXAMPLE_ROWS) -> Any:
    head = getattr(value, "head", None)
    return head(rows) if callable(head) else value[:rows]


def pick_input_example(
    model: Any, namespace: Mapping[str, Any], name: str | None = None
) -> tuple[str, Any] | None:
    """``(variable, first rows)`` to use as the input example, or None when none fits.

    ``name`` (``--input-example VAR``) must exist and be two-dimensional; otherwise the
    conventional names are tried, and only a value as wide as the model's input is taken.
    """
    if name is not None:
        if name not in namespace:
            raise UsageError(f"--input-example: no variable named {name!r} in this notebook")
        if _width(namespace[name]) is None:
            raise UsageError(
                f"--input-example: {name} is {describe(namespace[name])}, not a table "
                "(a DataFrame or a 2-D array)"
            )
        return name, first_rows(namespace[name])
    for candidate in EXAMPLE_NAMES:
        value = namespace.get(candidate)
        if value is not None and _fits(model, value):
            return candidate, first_rows(value)
    return None
