"""Checks of the arguments of the feature specs."""

import numbers


def check_name(argument, value):
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"`{argument}` must be a non-empty str. Received: {argument}={value!r}"
        )
    return value


def check_positive_int(argument, value, minimum=1):
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or value < minimum
    ):
        raise ValueError(
            f"`{argument}` must be an int >= {minimum}. Received: {argument}={value!r}"
        )
    return int(value)


def check_name_map(argument, value, allow_empty=False):
    """A dict of str to str, in its given order."""
    if not isinstance(value, dict) or (not value and not allow_empty):
        raise ValueError(
            f"`{argument}` must be a non-empty dict of input name to feature "
            f"name. Received: {argument}={value!r}"
        )
    for key, item in value.items():
        check_name(f"{argument} key", key)
        check_name(f"{argument}[{key!r}]", item)
    return dict(value)
