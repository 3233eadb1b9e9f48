"""The README's starts are real: two set-up commands, and a quick start the CLI takes as written (issue 31, item 11).

The quick start's simulation itself is the random-data path `tests/test_cli.py` runs bit-exact
(on a build the regression shares); here its command line, its promise and its figures are held to
the code.
"""

import re
import shlex
from pathlib import Path

from fusioncim.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(title):
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert m, title
    return m.group(1)


def _blocks(text):
    return [b.strip().splitlines() for b in re.findall(r"```\n(.*?)```", text, re.S)]


def test_two_setup_commands():
    (block,) = _blocks(_section("Two commands"))
    assert [line.split("#")[0].strip() for line in block] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_quick_start_is_one_command_the_cli_takes():
    section = _section("A first result in a minute")
    (block,) = _blocks(section)
    (line,) = block
    words = shlex.split(line)
    assert words[0] == ".venv/bin/fusioncim"
    args = build_parser().parse_args(words[1:])
    assert (args.command, args.config, args.npz) == ("simulate", "test", None)     # random heads, test preset
    # What it promises to print is what simulate prints on success.
    promised = re.search(r"`(bit-exact: [^`]+)`", section).group(1)
    assert promised in (ROOT / "fusioncim" / "sim" / "simulate.py").read_text()
    # The alternatives it names parse too, and the file it names is shipped.
    for extra in re.findall(r"`(--npz \S+ --heads \S+)`", section):
        args = build_parser().parse_args(words[1:] + shlex.split(extra))
        assert (ROOT / args.npz).is_file()
    # Its time is measured by a command named beside it.
    assert re.search(r"about \d+ s .*`time \.venv/bin/fusioncim simulate --config test`", section.replace("\n", " "))
