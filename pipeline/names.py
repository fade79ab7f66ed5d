"""Names that come from data (class names, file names, config values) are data, never paths or terminal codes.

A class name in a downloaded HDF5 or model file, or a file name in a user's folder, reaches three places:
- a file name (misclassified/test_0003_cat_as_non-cat.png): only through safe_name, and only into a folder
  through inside(), which refuses any result that would land elsewhere (the model: tarfile's `data` filter);
- the terminal: only through printable, so that a newline or an escape sequence in a name cannot split a
  line, forge an `error:` line or recolour the terminal;
- the model and dataset files: check_class_names refuses names that are empty, too long or hold control
  characters where they enter (list_classes of an HDF5 file, classes of a model.npz).
"""
import os
import re
import unicodedata
from pathlib import Path

from pipeline import PipelineError

NAME_MAX = 60  # characters of a name kept in a file name: readable, and far below the 255 bytes of NAME_MAX
CLASS_NAME_MAX = 100  # characters of a class name
QUOTE_MAX = 40  # characters of a value quoted in an error message
_UNSAFE = re.compile(r"[^\w.+-]|^\.+$|\.\.+")  # anything but letters, digits, _ . + -; a run of dots


def safe_name(name, limit=NAME_MAX):
    """A readable file-name part for any string: no separators, no `..`, no control characters, at most
    limit characters. "cat" -> "cat", "../../etc" -> "----etc", "a\\nb" -> "a-b", "" -> "-"."""
    name = "".join(c if c.isprintable() else "-" for c in str(name))
    return (_UNSAFE.sub("-", name)[:limit]) or "-"


def inside(folder, name):
    """folder / name, refusing a name that is not one plain file name inside folder (absolute, `..`, a
    separator): every file named from data is written through here."""
    path = Path(folder) / name
    if Path(name).name != name or name in ("", ".", "..") or \
            os.path.dirname(os.path.realpath(path)) != os.path.realpath(folder):  # realpath: a link loop is no error
        raise PipelineError(f"{printable(name)}: refused: a file name from data must stay inside {folder}")
    return path


def printable(text):
    """text with every control or format character (newline, escape, right-to-left override, lone
    surrogates from undecodable file names) written as a Python escape, so it prints as one honest line."""
    return "".join(c if c.isprintable() or unicodedata.category(c) == "Zs"
                   else c.encode("unicode_escape", "backslashreplace").decode("ascii") for c in str(text))


def quote(value, limit=QUOTE_MAX):
    """repr(value) cut to limit characters: what an error message may quote of a value from a file."""
    text = printable(repr(value))
    return text if len(text) <= limit else text[:limit] + "..."


def check_class_names(names, where):
    """Refuse class names that are empty, longer than CLASS_NAME_MAX or hold control characters; where
    names the file and key ("data/raw/x.h5: list_classes")."""
    for name in names:
        if not name.strip() or len(name) > CLASS_NAME_MAX or not name.isprintable():
            raise PipelineError(f"{where}: class name {quote(name)} refused: a class name must be 1 to "
                                f"{CLASS_NAME_MAX} printable characters")
    if len(set(names)) != len(names):
        raise PipelineError(f"{where}: the two classes have the same name {quote(names[0])}")
    return tuple(names)
