"""A griffe extension for the API pages: Keras's `Call arguments:` section
(which Google style does not know, so griffe renders it as an admonition)
becomes a list with one item per argument, as `Args:` reads."""

import re

import griffe

_ARGUMENT = re.compile(r"^( {4})(\*{0,2}\w+): ")


class KerasCallArguments(griffe.Extension):
    def on_object(self, *, obj, **kwargs):
        docstring = obj.docstring
        if docstring is None or "\nCall arguments:\n" not in docstring.value:
            return
        lines, inside = [], False
        for line in docstring.value.splitlines():
            if line == "Call arguments:":
                inside = True
            elif line and not line.startswith(" "):
                inside = False
            elif inside:
                line = _ARGUMENT.sub(r"\1- `\2`: ", line)
            lines.append(line)
        docstring.value = "\n".join(lines)
