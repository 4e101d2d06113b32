"""The documentation site builds strictly, and every command the README and "getting started" show names only
options that command has (checked against the CLI itself, so the docs cannot drift from it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from skinedge.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]


def commands(text: str) -> list[str]:
    """Every ``skinedge …`` command in fenced blocks (with its continuation lines) and in inline code."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if found and line.startswith(" ") and line.strip().startswith(("[", "--")):
                found[-1] += " " + line.strip()
                continue
            for part in re.split(r"&&|;|\|", line):  # one shell line may chain several commands
                start = re.search(r"(?:^|[\s$/])skinedge (?=[a-z])", part)
                if start:
                    found.append(part[start.end():])
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]*skinedge [a-z][^`\n]*)`", prose):
        for part in re.split(r"&&|;|\|", span):
            start = re.search(r"(?:^|[\s$/])skinedge (?=[a-z])", part)
            if start:
                found.append(part[start.end():])
    return found


def resolve(words: list[str]):
    """The click command a command line names, and the words that named it."""
    command, path = typer.main.get_command(app), []
    while words and hasattr(command, "commands") and words[0] in command.commands:
        command = command.commands[words[0]]
        path.append(words.pop(0))
    return command, path


def test_every_option_the_readme_and_getting_started_show_exists():
    checked = 0
    for page in PAGES:
        for line in commands(page.read_text()):
            command, path = resolve(line.split())
            assert path, f"{page.name}: `skinedge {line}` names no command"
            known = {"--help"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            for option in re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", line):
                assert option in known, f"{page.name}: `skinedge {' '.join(path)}` has no {option} ({line!r})"
                checked += 1
    assert checked > 100  # the command reference in getting started is covered, not skipped


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="pip install -e '.[docs]'")
    pytest.importorskip("material", reason="pip install -e '.[docs]' (mkdocs-material)")
    pytest.importorskip("mkdocstrings", reason="pip install -e '.[docs]'")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    for page in ("index.html", "architecture/index.html", "api/runtime/index.html", "troubleshooting/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    errors = (tmp_path / "site" / "troubleshooting" / "index.html").read_text()
    assert "skinedge.runtime.manifest" in errors and "re-run" in errors  # the generated list of every error
