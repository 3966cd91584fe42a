"""Every `>>>` example in the package's docstrings runs, on every backend,
and prints what it says."""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import keras_din


def public_modules():
    names = ["keras_din"]
    for info in pkgutil.walk_packages(keras_din.__path__, "keras_din."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def docstring_examples():
    finder = doctest.DocTestFinder()
    examples = {}
    for name in public_modules():
        for test in finder.find(importlib.import_module(name)):
            if test.examples:
                examples[test.name] = test
    return examples


EXAMPLES = docstring_examples()


def public_objects():
    """The classes and functions a user reaches from the public modules."""
    objects = {}
    for module in (keras_din, keras_din.models, keras_din.datasets):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                objects[f"{value.__module__}.{value.__qualname__}"] = value
    for name, value in vars(keras_din.metrics).items():
        if inspect.isfunction(value) and not name.startswith("_"):
            objects[f"keras_din.metrics.{name}"] = value
    return objects


def test_every_public_class_and_function_has_an_example():
    missing = sorted(set(public_objects()) - set(EXAMPLES))
    assert not missing, f"no `>>>` example in the docstrings of {missing}"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docstring_example_runs(name):
    test = EXAMPLES[name]
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    report = []
    runner.run(test, out=report.append, clear_globs=True)
    assert runner.failures == 0, "".join(report)
    assert runner.tries > 0
