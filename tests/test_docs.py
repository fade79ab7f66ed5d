"""README.md and docs/ stay true: links and anchors exist, the commands, flags, make targets and config keys
they quote exist, the config reference is complete, the README stays a short front door."""
import argparse
import re
import subprocess
import sys

import pytest

from pipeline.cli import build_parser
from pipeline.config import ALL_KEYS, SECTIONS
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FILE_SUFFIX = re.compile(r"\.(html|py|h5|csv|json|npz|yaml|md|png|svg)\b")


def prose(path):
    """The lines of a markdown file outside ``` code blocks."""
    lines, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = not inside
        elif not inside:
            lines.append(line)
    return lines


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    return {slug(line.lstrip("#")) for line in prose(path) if re.match(r"#+ ", line)}


def links():
    return [(doc, link) for doc in DOCS for line in prose(doc) for link in LINK.findall(line)
            if not re.match(r"[a-z]+:", link)]  # http:, https:, mailto:: not checked offline


@pytest.mark.parametrize("doc, link", links(), ids=lambda v: v.name if hasattr(v, "name") else v)
def test_every_relative_link_and_anchor_exists(doc, link):
    path, _, anchor = link.partition("#")
    target = (doc.parent / path).resolve() if path else doc
    name = target.relative_to(ROOT).as_posix()
    assert target.exists(), f"{doc.name}: link to {link}: no such file"
    if anchor:
        assert anchor in anchors(target), f"{doc.name}: link to {link}: no heading with that anchor in {name}"


def code(doc, commands=True):
    """What a doc quotes as code: its inline `spans` and (commands) the commands of its code blocks, the
    lines after `$ `: some of these show a refusal, so they may hold a wrong config key, never a wrong flag."""
    text = doc.read_text(encoding="utf-8")
    lines = [line[2:].split("  #")[0] for line in text.splitlines() if line.startswith("$ ")] if commands else []
    return [span for line in prose(doc) for span in re.findall(r"`([^`\n]+)`", line)] + lines


def helps():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser.format_help(), {name: p.format_help() for name, p in sub.choices.items()}


def flags(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))


def test_every_command_and_flag_the_docs_quote_exists():
    main, commands = helps()
    quoted = 0
    for doc in DOCS:
        for span in code(doc):
            for before, command, rest in re.findall(
                    r"(?:catneuron|python -m pipeline)((?:\s+--[a-z-]+)*)\s+([a-z][a-z-]*)\b([^|;&]*)", span):
                assert command in commands, f"{doc.name}: `{span}`: no command {command}"
                unknown = flags(before) - flags(main) | flags(rest) - flags(commands[command])
                assert not unknown, f"{doc.name}: `{span}`: {command} has no {', '.join(sorted(unknown))}"
                quoted += 1
    # docs/cli.md's table of commands: `fetch [--from SOURCE] ...` in its second column
    for line in prose(ROOT / "docs" / "cli.md"):
        cells = [c.strip().strip("`") for c in line.split("|")]
        if len(cells) > 3 and cells[2].split(" ")[0] in commands:
            command = cells[2].split(" ")[0]
            assert flags(cells[2]) <= flags(commands[command]), f"docs/cli.md: {line}"
            quoted += 1
    assert quoted > 40  # the check found the commands it is meant to check


def test_every_script_and_its_flags_the_docs_quote_exist():
    quoted = {}
    for doc in DOCS:
        for span in code(doc):
            for script, rest in re.findall(r"(scripts/\w+\.py)([^|;&]*)", span):
                quoted.setdefault(script, set()).update(flags(rest))
    assert len(quoted) >= 3
    for script, used in quoted.items():
        assert (ROOT / script).is_file(), script
        result = subprocess.run([sys.executable, ROOT / script, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and used <= flags(result.stdout), f"{script}: {used - flags(result.stdout)}"


def test_every_make_target_the_docs_quote_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    quoted = {t for doc in DOCS for span in code(doc) for t in re.findall(r"\bmake ([a-z][a-z-]*)", span)}
    assert quoted and quoted <= targets, quoted - targets


def test_the_config_reference_lists_every_key_and_only_keys():
    rows = [line for line in prose(ROOT / "docs" / "config.md") if line.startswith("| `")]
    listed = [key for row in rows for key in re.findall(r"`([a-z_]+\.[a-z_0-9]+)`", row.split("|")[1])]
    assert set(ALL_KEYS) <= set(listed), f"not in docs/config.md: {sorted(set(ALL_KEYS) - set(listed))}"
    for doc in DOCS:  # a key quoted anywhere is a real key (file names such as report.html aside)
        for span in code(doc, commands=False):
            for key in re.findall(r"(?<![\w./-])((?:" + "|".join(SECTIONS) + r")\.[a-z_0-9]+)", span):
                if not FILE_SUFFIX.fullmatch(key[key.index("."):]):
                    assert key in ALL_KEYS, f"{doc.name}: `{span}`: no config key {key}"


def test_the_readme_is_a_short_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "make train" in readme and "make test" in readme
    for page in ("docs/cli.md", "docs/config.md", "docs/speed.md", "docs/guide.md", "docs/develop.md",
                 "docs/security.md"):
        assert f"]({page}" in readme, page  # every detail it dropped is one link away
