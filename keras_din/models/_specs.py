"""Checks of the arguments of the feature specs.

Each error names the spec it is about (`owner`, such as "Feature 'item'"),
the argument, what was expected and what was received.
"""

import numbers


def check_name(argument, value, owner=None):
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{_prefix(owner)}`{argument}` must be a non-empty str. "
            f"Received: {argument}={value!r}"
        )
    return value


def check_positive_int(argument, value, minimum=1, owner=None):
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or value < minimum
    ):
        raise ValueError(
            f"{_prefix(owner)}`{argument}` must be an int >= {minimum}. "
            f"Received: {argument}={value!r}"
        )
    return int(value)


def check_name_map(argument, value, owner, meaning):
    """A non-empty dict of str to str, in its given order; `meaning` says
    what it maps ("history input name to feature name")."""
    if (
        not isinstance(value, dict)
        or not value
        or not all(
            isinstance(name, str) and name for pair in value.items() for name in pair
        )
    ):
        raise ValueError(
            f"{_prefix(owner)}`{argument}` must be a non-empty dict of {meaning} "
            f"(each a non-empty str). Received: {argument}={value!r}"
        )
    return dict(value)


def _prefix(owner):
    return f"{owner}: " if owner else ""
