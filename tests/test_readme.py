"""The README's Python example runs as written (on the tests' own ML-100K-shaped fixture)."""

from __future__ import annotations

import re
import shutil

from tests.helpers import REPO

README = REPO / "README.md"


def python_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### From Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_example_runs(tmp_path, monkeypatch, sources, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))  # Home("~/aerec") lands in the temp folder
    monkeypatch.chdir(tmp_path)
    shutil.copy(sources.ml100k_zip, tmp_path / "ml-100k.zip")
    exec(compile(python_example(), str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert "test RMSE" in printed and "ndcg@10" in printed
    assert (tmp_path / "aerec" / "datasets" / "ml-100k" / "meta.json").is_file()


def test_the_package_docstring_shows_the_same_example():
    import aerec_cli

    lines = [line.strip() for line in python_example().splitlines() if line.strip()]
    doc = [line.strip() for line in aerec_cli.__doc__.splitlines() if line.strip()]
    assert all(line in doc for line in lines)
