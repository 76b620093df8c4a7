"""Run the runnable examples of the detectors' docstrings."""

import doctest
import importlib

import pytest

MODULES = [
    "_config",
    "_cusum",
    "_heavy_hitters",
    "_homogeneity",
    "_monitor",
    "_numeric",
    "_policy",
    "_categorical",
    "_state",
    "_window",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"driftline.detectors.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
