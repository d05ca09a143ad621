"""Missing test inputs: a skip on a developer's machine, a loud failure under CI (tests/conftest.py)."""

import pytest
from conftest import in_ci, missing, require_module


@pytest.mark.parametrize("value,expected", [("true", True), ("1", True), ("yes", True), ("", False),
                                            ("0", False), ("false", False), ("No", False)])
def test_ci_flag(monkeypatch, value, expected):
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_missing_input_fails_under_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no such data.*CI must provide it.*Fix: get it"):
        missing("no such data", "get it")
    with pytest.raises(pytest.fail.Exception, match=r"'pesflow_no_such_module'.*pip install"):
        require_module("pesflow_no_such_module")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no such data"):
        missing("no such data", "get it")
    with pytest.raises(pytest.skip.Exception, match="pesflow_no_such_module"):
        require_module("pesflow_no_such_module")
    assert require_module("json").dumps([1]) == "[1]"
