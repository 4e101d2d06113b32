"""``enhance --ray`` on a real local Ray cluster (2 CPUs): the same files as plain ``enhance``, broken inputs as
rows with a reason, a second run that does no work, a killed job that resumes."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed")

from skinedge.data.generate import write_synthetic  # noqa: E402
from skinedge.errors import SkinedgeError  # noqa: E402
from skinedge.runtime.enhance import enhance_command  # noqa: E402
from skinedge.runtime.scale.ray_enhance import RESULTS, enhance_ray, read_results  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray-in")
    write_synthetic(folder / "synth", count=4, size=128, seed=8)
    images = folder / "synth" / "images"
    (images / "broken.png").write_text("not a png")
    (images / "cut.png").write_bytes((images / "synth_00000.png").read_bytes()[:300])
    return images


def outputs(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".png"}


def test_ray_gives_plain_enhances_files_bit_for_bit_and_a_second_run_does_no_work(exported, inputs, tmp_path):
    _, _, models = exported
    plain, distributed = tmp_path / "plain", tmp_path / "ray"
    with pytest.raises(SkinedgeError, match="2 input"):
        enhance_command([str(inputs)], models, plain, backend="onnxruntime", precision="fp32", log=lambda s: None)
    lines = []
    with pytest.raises(SkinedgeError, match="2 input.* failed"):
        enhance_ray([str(inputs)], models, distributed, backend="onnxruntime", precision="fp32", log=lines.append)
    assert any(line.startswith("ray: local cluster, 2 CPU(s); 2 worker(s)") for line in lines), lines
    made = outputs(distributed)
    assert len(made) == 4 * 3 and made == outputs(plain)  # every PNG, provenance chunks included
    rows = read_results(distributed)
    assert len(rows) == 6 and len({r["worker"] for r in rows.values()}) == 2  # both workers took a share
    broken = {k: v for k, v in rows.items() if v["status"] != "ok"}
    assert sorted(k.rsplit("/", 1)[1] for k in broken) == ["broken.png", "cut.png"]
    assert all(r["reason"] and not r["outputs"] for r in broken.values())
    assert "not an image" in broken[str(inputs / "broken.png")]["reason"]
    stamps = {p.name: p.stat().st_mtime_ns for p in distributed.iterdir()}
    lines = []
    with pytest.raises(SkinedgeError, match="2 input.* failed"):  # still failed, from the table: not tried again
        enhance_ray([str(inputs)], models, distributed, backend="onnxruntime", precision="fp32", log=lines.append)
    assert lines[0] == f"6 of 6 input(s) already done ({distributed / RESULTS}); 0 to do"
    assert not any(line.startswith("ray:") for line in lines)  # no cluster was even started
    assert {p.name: p.stat().st_mtime_ns for p in distributed.iterdir()} == stamps


def test_a_job_killed_half_way_resumes_and_does_each_input_once(exported, inputs, tmp_path):
    _, _, models = exported
    out = tmp_path / "out"
    good = sorted(p for p in inputs.iterdir() if p.name.startswith("synth_"))
    enhance_ray([str(p) for p in good[:2]], models, out, backend="onnxruntime", precision="fp32", log=lambda s: None)
    # What a kill leaves: a torn last line, and half of an input's files without its line.
    with open(out / RESULTS, "a") as table:
        table.write('{"input": "torn')
    (out / f"{good[2].stem}.enhanced.png").write_bytes(b"half written")
    first = {p: (out / f"{p.stem}.enhanced.png").stat().st_mtime_ns for p in good[:2]}
    lines = []
    rows = enhance_ray([str(p) for p in good], models, out, backend="onnxruntime", precision="fp32",
                       log=lines.append)
    assert lines[0].startswith("2 of 4 input(s) already done") and [r["input"] for r in rows] == [
        str(p) for p in good[2:]]
    assert {p: (out / f"{p.stem}.enhanced.png").stat().st_mtime_ns for p in good[:2]} == first  # not redone
    assert (out / f"{good[2].stem}.enhanced.png").read_bytes().startswith(b"\x89PNG")  # replaced, whole
    table = read_results(out)
    assert all(table[str(p)]["status"] == "ok" for p in good)
    assert sum(1 for line in (out / RESULTS).read_text().splitlines() if '"status": "ok"' in line) == 4
    assert json.loads((out / RESULTS).read_text().splitlines()[-1])["status"] == "ok"
