"""docs/guide.md cannot drift from the code: its examples run and its line citations are checked.

Each ```python block runs in a fresh interpreter from the project root and must print exactly the ```text
block that follows it; each ```console block runs its one `$ python ...` command and must print the lines
below it. `...` in an expected line stands for any text within that line (doctest's ELLIPSIS), for numbers
that depend on the machine's floating point. Blocks that use CATVNONCAT_DIR, and console blocks (scripts on
the real data), get the course data exactly as the course_dir fixture does: skipped without it, failed under
REQUIRE_REAL_DATA. Every `pipeline/x.py:N-M` citation must still span the cited function, from its `def`
to its last line.
"""
import ast
import re
import shlex

import pytest

from tests.conftest import ROOT, run_python

GUIDE = ROOT / "docs" / "guide.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
CITATION = re.compile(r"`(pipeline/[\w/]+\.py)`\s+function\s+`([\w.]+)`,\s+`(pipeline/[\w/]+\.py):(\d+)-(\d+)`")
LINE_RANGE = re.compile(r"`pipeline/[\w/]+\.py:\d+-\d+`")


def examples(text, name="guide.md"):
    """pytest params (kind, code, expected output) for each ```python and ```console block of the guide
    (or of the page name, for the tests' ids)."""
    blocks = [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]
    found = []
    for i, (lang, body, line) in enumerate(blocks):
        if lang == "python":
            following = blocks[i + 1] if i + 1 < len(blocks) else ("", None, 0)
            found.append(pytest.param("python", body, following[1] if following[0] == "text" else None,
                                      id=f"{name}:{line}"))
        elif lang == "console":
            command, _, expected = body.partition("\n")
            found.append(pytest.param("console", command, expected, id=f"{name}:{line}"))
    return found


def matches(expected, printed):
    """Exact, except that `...` in an expected line matches any text within that line."""
    pattern = "\n".join(".*".join(map(re.escape, line.split("..."))) for line in expected.split("\n"))
    return re.fullmatch(pattern, printed) is not None


def definitions(path):
    """{name: (def line, last line)} of the functions and classes in a file; methods as Class.method."""
    found = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                found[prefix + child.name] = (child.lineno, child.end_lineno)
                visit(child, f"{prefix}{child.name}.")

    visit(ast.parse((ROOT / path).read_text(encoding="utf-8")), "")
    return found


TEXT = GUIDE.read_text(encoding="utf-8")
EXAMPLES = examples(TEXT)
CITATIONS = CITATION.findall(TEXT)


@pytest.mark.parametrize("kind, code, expected", EXAMPLES)
def test_example_prints_what_the_guide_shows(kind, code, expected, request):
    assert expected is not None, "a ```python block must be followed by a ```text block with what it prints"
    env = {}
    if kind == "console" or "CATVNONCAT_DIR" in code:
        env["CATVNONCAT_DIR"] = str(request.getfixturevalue("course_dir"))
    if kind == "console":
        assert code.startswith("$ python "), f"a ```console block runs one `$ python ...` command, got {code!r}"
        args = shlex.split(code[len("$ python "):])
    else:
        args = ["-c", code]
    result = run_python(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert matches(expected, result.stdout), f"it printed:\n{result.stdout}\nthe guide shows:\n{expected}"


def test_the_guide_has_an_example_for_every_section_of_the_notes():
    # twelve sections in the notes, each with at least one example; an extraction bug would find none
    sections = re.findall(r"^## (\d+)\. ", TEXT, re.M)
    assert sections == [str(n) for n in range(1, 13)]
    assert sum(p.values[0] == "python" for p in EXAMPLES) >= 12
    assert any(p.values[0] == "console" for p in EXAMPLES)


def test_ellipsis_matches_within_one_line_only():
    assert matches("relative difference: ...e-09\n", "relative difference: 2.2e-09\n")
    assert not matches("relative difference: ...e-09\n", "relative difference: 2.2e-05\n")
    assert not matches("a ... b\n", "a x\ny b\n")
    assert not matches("cost 0.693147\n", "cost 0.693148\n")


def test_every_line_range_is_a_checked_citation():
    # a range written in another form would escape the check below
    assert len(LINE_RANGE.findall(TEXT)) == len(CITATIONS) >= 12


@pytest.mark.parametrize("path, name, same_path, first, last", CITATIONS, ids=[c[1] for c in CITATIONS])
def test_cited_line_range_still_holds_the_function(path, name, same_path, first, last):
    assert same_path == path, f"docs/guide.md cites `{path}` function `{name}` with lines of `{same_path}`"
    where = definitions(path)
    assert name in where, f"docs/guide.md cites `{path}` function `{name}`, which {path} no longer defines"
    start, end = where[name]
    # the whole function, from its def: a line added or removed anywhere above or inside it shows here
    assert (int(first), int(last)) == (start, end), (
        f"docs/guide.md cites {path}:{first}-{last} for {name}, which is now at {path}:{start}-{end}")
