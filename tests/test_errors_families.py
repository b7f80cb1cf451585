"""Error families keep their exit codes and report categories (wsi_engine/errors.py)."""

from __future__ import annotations

import pytest

from wsi_engine import errors

FAMILIES = [
    ("ConfigError", 3, "configuration error"),
    ("SlideError", 4, "slide error"),
    ("StoreError", 5, "store error"),
    ("EncoderError", 6, "encoder error"),
    ("DataError", 7, "data error"),
    ("OutputError", 8, "output error"),
]


@pytest.mark.parametrize(("name", "code", "category"), FAMILIES)
def test_family_exit_code_and_category(name, code, category):
    family = getattr(errors, name)
    error = family("bad thing", path="a.svs", hint="fix it")
    assert issubclass(family, errors.WsiEngineError)
    assert errors.exit_code_of(error) == code
    assert errors.describe(error) == f"{category}: a.svs: bad thing (fix it)"
    assert errors.exit_code_of_reason(f"embed: {errors.describe(error)}") == code


def test_batch_failures_and_unknown_errors():
    assert errors.BatchFailures("2 of 3 failed").exit_code == 1
    assert errors.describe(errors.BatchFailures("x")) == "error: x"
    assert errors.describe(ValueError("boom")) == "internal error: ValueError: boom"
    assert errors.exit_code_of(ValueError("boom")) == errors.INTERNAL_ERROR_EXIT_CODE
    assert errors.exit_code_of_reason("no category here") == 1
    assert errors.CATEGORIES == {category: code for _, code, category in FAMILIES}


def test_a_subclass_inherits_its_family():
    class BadPreset(errors.ConfigError):
        pass

    assert (
        BadPreset("x").exit_code == 3
        and errors.describe(BadPreset("x")) == "configuration error: x"
    )
