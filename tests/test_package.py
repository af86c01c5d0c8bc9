"""The package's map: its module list and its formula index (course_lib/__init__.py) stay true."""
from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import course_lib


def _index_rows() -> list[tuple[int, str, list[str]]]:
    """(chapter, formula, dotted names) of each row of the formula index."""
    block = course_lib.__doc__.split("Formula index", 1)[1].split("::", 1)[1]
    rows = []
    for line in block.splitlines():
        if not line.strip() or line.split()[0] == "ch":  # blank, or the header
            continue
        match = re.fullmatch(r"\s+(\d)\s+(.+?)\s{2,}([\w.]+(?:, [\w.]+)*)\s*", line)
        assert match, f"a formula index row is not 'chapter  formula  module.name[, module.name]': {line!r}"
        rows.append((int(match[1]), match[2], match[3].split(", ")))
    return rows


ROWS = _index_rows()


def test_the_index_covers_every_chapter_in_order():
    chapters = [chapter for chapter, _, _ in ROWS]
    assert chapters == sorted(chapters) and set(chapters) == {1, 2, 3, 4, 5}
    assert len(ROWS) >= 30


@pytest.mark.parametrize("chapter, formula, names", ROWS, ids=[row[1][:40] for row in ROWS])
def test_each_indexed_name_exists_and_teaches_in_that_chapter(chapter, formula, names):
    for dotted in names:
        module, name = dotted.split(".")
        obj = getattr(importlib.import_module(f"course_lib.{module}"), name, None)
        assert obj is not None, f"the formula index names course_lib.{dotted}, which does not exist"
        said = {int(n) for n in re.findall(r"chapters? (\d)", obj.__doc__ or "")}
        assert not said or chapter in said, f"course_lib.{dotted} says chapter {sorted(said)}, the index {chapter}"


def test_the_module_list_names_every_module_and_only_those():
    listed = set(re.findall(r"``(\w+)``", course_lib.__doc__.split("Formula index", 1)[0]))
    modules = {m.name for m in pkgutil.iter_modules(course_lib.__path__) if not m.name.startswith("_")}
    modules.discard("evaluate_metrics")  # a data folder (the local SQuAD metric), not a module to read
    assert listed == modules, (f"not listed: {sorted(modules - listed)}", f"no such module: {sorted(listed - modules)}")
