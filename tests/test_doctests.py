"""Run every runnable example in driftline's docstrings, collected rather than listed.

Each module of the installed package is imported and handed to :mod:`doctest`; a module whose
docstrings hold examples becomes one test. A hand-kept list of modules silently stops
covering the examples of a module added after it; collection cannot.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import driftline.detectors
import driftline.replay
import driftline.schemas
import driftline.streams

_PACKAGES = (driftline.schemas, driftline.detectors, driftline.streams, driftline.replay)


def _modules_with_examples() -> list[str]:
    finder = doctest.DocTestFinder()
    names = []
    for package in _PACKAGES:
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            if any(test.examples for test in finder.find(module, info.name)):
                names.append(info.name)
    return names


MODULES = _modules_with_examples()


def test_examples_are_found():
    """The collection itself works: the detection core documents its API by example."""
    assert "driftline.detectors._monitor" in MODULES
    assert len(MODULES) >= 10


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
