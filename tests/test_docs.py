"""The documentation points at things that exist.

- every relative Markdown link in README.md and docs/*.md resolves to a file, and its
  `#anchor`, if any, to a heading of that file (GitHub's slugs);
- every script or test a page names (`examples/*.sh`, `scripts/*.py`, `benchmarks/*.py`,
  `tests/*.py`, and `tests/x.py::test_name`) exists;
- every `--flag` of a `fairseq-train ... --user-dir amos_fairseq` command in a fenced code
  block is an option of fairseq-train for the task, arch, criterion, optimizer and
  learning-rate scheduler that command names.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REPO_FILE = re.compile(
    r"(?<![\w./-])((?:examples|scripts|benchmarks|tests)/[\w./-]*?\.(?:sh|py))(?:::(\w+))?(?![\w/])"
)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def split_fenced(text: str):
    """(prose lines, fenced lines) of a Markdown text, each as (line number, line)."""
    prose, fenced, inside = [], [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.strip()):
            inside = not inside
            continue
        (fenced if inside else prose).append((number, line))
    return prose, fenced


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set:
    prose, _ = split_fenced(path.read_text(encoding="utf-8"))
    seen, result = {}, set()
    for _, line in prose:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links():
    for page in PAGES:
        prose, _ = split_fenced(page.read_text(encoding="utf-8"))
        for number, line in prose:
            for match in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
                yield page, number, match.group(1)


def broken_links():
    problems = []
    for page, number, target in links():
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        where = f"{rel(page)}:{number}: ({target})"
        if not path.exists():
            problems.append(f"{where} no such file or folder")
        elif anchor and path.is_file() and path.suffix == ".md" and anchor not in anchors(path):
            problems.append(f"{where} no heading with the anchor #{anchor} in {rel(path)}")
    return problems


def test_every_relative_link_resolves():
    assert list(links()), "no links found: the pattern is broken"
    problems = broken_links()
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_slugs_follow_github():
    assert slug("Measured at the CPU scale: `amos_mini`, three seeds") == "measured-at-the-cpu-scale-amos_mini-three-seeds"
    assert slug("Exactness") == "exactness"
    assert slug("CPU bf16 (`--cpu-bf16 off|on|auto`)") == "cpu-bf16---cpu-bf16-offonauto"


def named_files():
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            for match in REPO_FILE.finditer(line):
                yield page, number, match.group(1), match.group(2)


def test_every_named_script_and_test_exists():
    found = list(named_files())
    assert any(name == "examples/quickstart.sh" for _, _, name, _ in found), "the pattern is broken"
    problems = []
    for page, number, name, function in found:
        path = ROOT / name
        if not path.is_file():
            problems.append(f"{rel(page)}:{number}: {name} does not exist")
        elif function and not re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{function}\b", path.read_text(encoding="utf-8"), re.M):
            problems.append(f"{rel(page)}:{number}: {name} has no test {function}")
    assert not problems, "named files missing:\n" + "\n".join(problems)


def test_the_checks_catch_a_broken_link_and_a_missing_script(tmp_path, monkeypatch):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    (tmp_path / "other.md").write_text("# Title\n\n## A section: here\n", encoding="utf-8")
    page.write_text(
        "[ok](../other.md#a-section-here) [bad anchor](../other.md#nowhere) [gone](missing.md)\n"
        "`scripts/no_such_script.py`\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PAGES", [page])
    problems = broken_links()
    assert len(problems) == 2 and "#nowhere" in problems[0] and "missing.md" in problems[1]
    assert [name for _, _, name, _ in named_files()] == ["scripts/no_such_script.py"]


# fairseq-train commands of the plug-in ---------------------------------------------------

REGISTRY_FLAGS = ("--task", "--arch", "--criterion", "--optimizer", "--lr-scheduler")

# Runs in a fresh process: loads the plug-in and collects every option fairseq-train would
# accept for each command's task, arch, criterion, optimizer and scheduler.
OPTIONS_OF = r"""
import json, sys
from fairseq import options

class Done(Exception):
    pass

result = []
for selecting in json.loads(sys.argv[1]):
    parser = options.get_training_parser()
    calls, known = [], []
    def capture(p):
        calls.append(1)
        if len(calls) == 2:  # after every task-, model- and registry-specific option is added
            known.extend(p._option_string_actions)
            raise Done()
    try:
        options.parse_args_and_arch(parser, ["data-bin", *selecting], parse_known=True, modify_parser=capture)
    except Done:
        pass
    result.append(sorted(known))
print(json.dumps(result))
"""


def plugin_commands():
    """(page, line, [arguments]) of each fenced `fairseq-train ... --user-dir amos_fairseq`."""
    for page in PAGES:
        _, fenced = split_fenced(page.read_text(encoding="utf-8"))
        joined, start = "", None
        for number, line in fenced:
            if start is None:
                start = number
            joined += line.rstrip().rstrip("\\") + " "
            if line.rstrip().endswith("\\"):
                continue
            words = joined.split()
            if "fairseq-train" in words:
                args = words[words.index("fairseq-train") + 1:]
                if "--user-dir" in args and args[args.index("--user-dir") + 1].rstrip("/").endswith("amos_fairseq"):
                    yield page, start, args
            joined, start = "", None


def test_fairseq_train_flags_in_the_docs_exist():
    commands = list(plugin_commands())
    assert commands, "no fairseq-train command with --user-dir amos_fairseq found"
    selections = []
    for _, _, args in commands:
        selecting = ["--user-dir", str(ROOT / "amos_fairseq")]
        for flag in REGISTRY_FLAGS:
            if flag in args:
                selecting += [flag, args[args.index(flag) + 1]]
        selections.append(selecting)
    unique = sorted({json.dumps(s) for s in selections})
    out = subprocess.run(
        [sys.executable, "-c", OPTIONS_OF, json.dumps([json.loads(s) for s in unique])],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    known = dict(zip(unique, (set(o) for o in json.loads(out.stdout.strip().splitlines()[-1]))))
    assert any("--gumbel-temperature" in k for k in known.values()), "the plug-in's options were not collected"
    problems = []
    for (page, number, args), selecting in zip(commands, selections):
        options_known = known[json.dumps(selecting)]
        for word in args:
            flag = word.split("=", 1)[0]
            if flag.startswith("--") and flag not in options_known:
                problems.append(f"{rel(page)}:{number}: {flag} is not an option of this fairseq-train command")
    assert not problems, "unknown flags:\n" + "\n".join(problems)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
