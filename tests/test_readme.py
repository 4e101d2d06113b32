"""The README's two commands are the contract with a new user; CI must run the test one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    commands = readme_commands()
    assert len(commands) == 2
    demo, tests = commands
    assert "skinedge demo" in demo and "pytest" in tests
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines


def test_readme_picture_exists():
    for picture in re.findall(r"\]\((docs/[^)]+\.png)\)", (ROOT / "README.md").read_text()):
        assert (ROOT / picture).is_file(), picture
