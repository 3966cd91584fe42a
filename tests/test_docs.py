"""The README and the docs: every Python block runs and does what the text
says, on every backend; every command names a script, flag and tox
environment that exist; every relative link of the README resolves.

The blocks of one page run in order, in one namespace, in a fresh folder,
as a reader would paste them. A block that cannot run here starts with
`NOT_RUN` and says why; such blocks are the exception.
"""

import configparser
import contextlib
import io
import re
import shlex
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_din

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md"] + sorted(
    str(path.relative_to(ROOT)) for path in (ROOT / "docs").rglob("*.md")
)
NOT_RUN = "# Not run by the tests:"
MOST_BLOCKS_NOT_RUN = 2


def blocks(page, language):
    text = (ROOT / page).read_text()
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


def expected_output(block):
    """The lines a block says it prints: each `# -> text` comment, at the end
    of a `print` line or on a line of its own, in order; `...` stands for
    any text."""
    return re.findall(r"# -> (.*)$", block, flags=re.M)


def check_output(printed, expected, where):
    """`expected` lines match lines of `printed`, in order (others between)."""
    lines = iter(line.strip() for line in printed.splitlines())
    for pattern in expected:
        regex = ".*".join(re.escape(part.strip()) for part in pattern.split("..."))
        if not any(re.fullmatch(regex, line) for line in lines):
            raise AssertionError(
                f"{where}: no printed line matches {pattern!r} (in order). "
                f"Printed:\n{printed}"
            )


def run_page(page, tmp_path, monkeypatch):
    """Runs the page's Python blocks, checking what they print; returns
    their namespace."""
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    namespace = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        # Keras warns, e.g., when a layer drops a mask: no example may.
        warnings.simplefilter("error", UserWarning)
        for number, block in enumerate(blocks(page, "python")):
            if block.startswith(NOT_RUN):
                continue
            where = f"{page}, block {number}"
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(block, where, "exec"), namespace)
            check_output(printed.getvalue(), expected_output(block), where)
    return namespace


def check_getting_started(namespace):
    # The ten-line DIN (the README's example too) learns: two epochs reach
    # an AUC well above 0.5. Then the functional model (the page's last),
    # trained on a batch with empty histories.
    assert keras_din.metrics.auc(namespace["y_test"], namespace["scores"]) > 0.6
    inputs = [namespace["candidates"], namespace["histories"]]
    assert np.all(np.isfinite(namespace["model"].predict(inputs, verbose=0)))


def check_feature_specs(namespace):
    din, dien, ranker = (namespace[name] for name in ("din", "dien", "ranker"))
    assert "clicks_length" in din.input and "negative_items" not in din.input
    assert {"negative_items", "negative_categories"} <= set(dien.input)
    assert tuple(ranker.input["item"].shape) == (None, 5)
    assert namespace["scores"].shape == (32, 5)
    assert namespace["base"].get_layer("buys_sum_pooling") is not None
    assert namespace["bst"].get_layer("clicks_transformer").num_heads == 4
    # The model of your own on `FeatureEmbedding`, one candidate per row.
    x, model = namespace["x"], namespace["model"]
    one = {k: x[k][:, :1] if k in ("item", "category") else x[k] for k in model.input}
    assert model.predict(one, verbose=0).shape == (32, 1)


def check_dien(namespace):
    assert np.all(np.isfinite(namespace["dien"].predict(namespace["data"], verbose=0)))


CHECKS = {
    "docs/getting-started.md": check_getting_started,
    "docs/guides/feature-specs.md": check_feature_specs,
    "docs/guides/dien.md": check_dien,
}
# The README's one example is Getting started's first (a test says so),
# which runs there.
RUNNABLE = [
    page
    for page in PAGES
    if page != "README.md"
    and any(not b.startswith(NOT_RUN) for b in blocks(page, "python"))
]


@pytest.mark.parametrize("page", RUNNABLE)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    namespace = run_page(page, tmp_path, monkeypatch)
    if page in CHECKS:
        CHECKS[page](namespace)


def test_pages_with_checks_have_blocks():
    assert set(CHECKS) <= set(RUNNABLE)


def test_printed_lines_are_checked():
    check_output(
        "a\n  (4, 1, 8)\nValueError: x 1 y\n", ["(4, 1, 8)", "... x ... y"], ""
    )
    for printed, expected in (("(4, 1, 8)\n", ["(4, 1, 9)"]), ("b\na\n", ["a", "b"])):
        with pytest.raises(AssertionError, match="no printed line matches"):
            check_output(printed, expected, "")
    assert (
        sum(len(expected_output(b)) for p in PAGES for b in blocks(p, "python")) >= 30
    )


def test_readme_starts_with_the_two_commands_and_a_ten_line_example():
    (commands, *_) = blocks("README.md", "bash")
    lines = commands.strip().splitlines()
    assert len(lines) == 2
    assert "examples/train_din.py" in lines[0] and lines[1].endswith("tox")
    (example,) = blocks("README.md", "python")
    assert len([line for line in example.splitlines() if line.strip()]) <= 10
    assert example == blocks("docs/getting-started.md", "python")[0]
    assert (ROOT / "README.md").read_text().count("\n") <= 200


def test_blocks_not_run_are_few_and_say_why():
    skipped = [
        (page, block.splitlines()[0])
        for page in PAGES
        for block in blocks(page, "python")
        if block.startswith(NOT_RUN)
    ]
    assert len(skipped) <= MOST_BLOCKS_NOT_RUN, skipped
    for page, line in skipped:
        assert len(line) > len(NOT_RUN) + 10, (page, line)


def commands():
    """`(page, words)` of every shell command of the pages, continuation
    lines joined and comments dropped."""
    for page in PAGES + ["CONTRIBUTING.md"]:
        for block in blocks(page, "bash"):
            command = ""
            for line in block.replace("\\\n", " ").splitlines():
                command += line + "\n"
                try:
                    words = shlex.split(command, comments=True)
                except ValueError:  # a quotation that goes on
                    continue
                command = ""
                if words:
                    yield page, words


def test_commands_name_scripts_flags_and_tox_environments_that_exist():
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    env_list = tox["tox"]["env_list"].replace(",", " ").split()
    environments = set(env_list) | {
        section.split(":", 1)[1] for section in tox.sections() if ":" in section
    }
    environments |= {
        f"bench-gpu-{backend}" for backend in ("tensorflow", "torch", "jax")
    }
    seen = 0
    for page, words in commands():
        for i, word in enumerate(words):
            if word.endswith(".py") and "/" in word and not word.startswith("-"):
                script = ROOT / word
                assert script.is_file(), (page, word)
                source = script.read_text()
                flags = [w.split("=")[0] for w in words[i + 1 :] if w.startswith("--")]
                for flag in flags:
                    assert f'"{flag}"' in source, (page, word, flag)
                seen += 1
            if word == "-e" and "tox" in words[max(0, i - 1)]:
                name = words[i + 1]
                assert name in environments, (page, name)
    assert seen >= 10


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]+)\)", text)
    assert targets
    for target in targets:
        if not target.startswith(("http://", "https://", "#")):
            assert (ROOT / target.split("#")[0]).exists(), target
