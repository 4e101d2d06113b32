"""``skinedge enhance --ray [ADDRESS]``: the same inputs and outputs as ``enhance``, as a Ray Data pipeline.

A hospital re-processing its archive should not need a home-made job runner. The inputs are listed (and their
output names fixed) exactly as plain ``enhance`` does; Ray Data streams them through ``map_batches`` over an
actor pool in which each worker opens one session at start and keeps it (CPU workers, or one GPU each with
``--ray-gpus-per-worker 1``); each worker decodes with skinedge's own reader, enhances and writes the outputs
itself (atomically, a frame's files together or not at all). A file that cannot be used becomes a result row
with its reason, never a failed job.

``results.jsonl`` in the output folder gets one line per input as it finishes (flushed as it goes): status,
reason, frames, outputs, timings and the worker. A re-run skips every input whose ``ok`` line is there and
whose outputs all exist, and every failed one that has not changed since (size, mtime), so a job killed half
way resumes where it was and a finished one does no work — nothing done twice; an input in
progress when it was killed has no line and is done again, replacing what it had half written. Without ADDRESS
a local cluster is started (``ray.init()``, all this machine's cores) and stopped at the end.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from skinedge.errors import SkinedgeError

EXTRA = "pip install 'skinedge[ray]'"
RESULTS = "results.jsonl"


def _ray():
    try:
        import ray
    except ImportError:
        raise SkinedgeError(f"--ray needs Ray Data: {EXTRA}") from None
    return ray


def read_results(out: Path) -> dict[str, dict]:
    """The last line per input of an earlier run's results table (a torn last line of a killed run is ignored)."""
    rows = {}
    try:
        lines = (out / RESULTS).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        rows[row["input"]] = row
    return rows


def input_stamp(path: Path) -> list[int] | None:
    """(size, mtime in ns) of an input file: a failed input is tried again only once it has changed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def finished(row: dict | None, path: Path) -> bool:
    """Done by an earlier run: enhanced with all its outputs still there, or failed on this very file."""
    if not row:
        return False
    if row.get("status") == "ok":
        return all(Path(f).is_file() for f in row.get("outputs", []))
    return row.get("stamp") is not None and row.get("stamp") == input_stamp(path)


class Enhancer:
    """One Ray actor: a session opened once, then batches of ``{"path", "stem", "redo"}`` rows → result rows
    (one JSON string each, so rows of any shape share one column)."""

    def __init__(self, models: str, backend: str, precision: str, mode: str, engines: str | None, tile: int | None,
                 fidelity, out: str, overwrite: bool, hallucination: bool, dicom: bool):
        from skinedge.runtime.clinical import provenance
        from skinedge.runtime.session import open_session

        session = open_session(models, backend, precision, Path(engines) if engines else None, mode, tile, fidelity)
        self.pipeline = session.pipeline.__enter__()
        self.record = provenance.session_record(models, session.manifest, session.opened, self.pipeline, mode)
        self.out, self.overwrite, self.hallucination, self.dicom = Path(out), overwrite, hallucination, dicom
        self.worker = f"{os.uname().nodename}:{os.getpid()}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        rows = [json.dumps(self.one(Path(str(p)), str(s), bool(r)))
                for p, s, r in zip(batch["path"], batch["stem"], batch["redo"])]
        return {"row": rows}

    def one(self, path: Path, stem: str, redo: bool) -> dict:
        from skinedge.runtime.enhance import _enhance_one, read_frames

        start = time.perf_counter()
        row: dict[str, Any] = {"input": str(path), "stamp": input_stamp(path), "worker": self.worker, "frames": [],
                               "outputs": []}
        try:
            frames = read_frames(path)
            for item in frames:
                base = self.out / f"{stem}{item.suffix}"
                done = _enhance_one(self.pipeline, item, base, self.overwrite or redo, self.record,
                                    self.hallucination, self.dicom, path.name)
                row["frames"].append({"suffix": item.suffix, **{k: done[k] for k in (
                    "size", "found", "roi", "lesion_area", "ms", "residual", "note")}})
                row["outputs"] += done["files"]
        except SkinedgeError as exc:
            row.update(status="failed", reason=str(exc))
        else:
            row.update(status="ok", reason="")
        row["seconds"] = round(time.perf_counter() - start, 4)
        return row


def enhance_ray(inputs: list[str], models: Path, out: Path, *, address: str | None = None, backend: str = "auto",
                precision: str = "auto", mode: str = "roi", engines: Path | None = None, overwrite: bool = False,
                tile: int | None = None, fidelity=None, hallucination: bool = False, dicom: bool = False,
                workers: int | None = None, gpus_per_worker: float = 0.0, log: Callable[[str], None] = print
                ) -> list[dict]:
    """Run ``enhance`` as a Ray Data job; returns this run's result rows (in input order).

    Raises:
        SkinedgeError: Ray missing or unreachable, or (after the job) any input that failed.
    """
    from skinedge.runtime.enhance import Summary, expand_inputs, gallery, output_stems

    ray = _ray()
    paths, problems = expand_inputs(inputs)
    for text, reason in problems:
        log(f"skip {text}: {reason}")
    out.mkdir(parents=True, exist_ok=True)
    before = read_results(out)
    resuming = (out / RESULTS).exists()  # an earlier job wrote here: its unfinished inputs' leftovers are ours
    todo = [(p, s) for p, s in zip(paths, output_stems(paths)) if not finished(before.get(str(p)), p)]
    log(f"{len(paths) - len(todo)} of {len(paths)} input(s) already done ({out / RESULTS}); {len(todo)} to do")
    rows: list[dict] = []
    if todo:
        rows = _run(ray, todo, resuming, address, workers, gpus_per_worker, log,
                    (str(models), backend, precision, mode, str(engines) if engines else None, tile, fidelity,
                     str(out), overwrite, hallucination, dicom), out)
    everything = {**before, **{r["input"]: r for r in rows}}
    summary = Summary(failed=list(problems))
    for path in paths:
        row = everything.get(str(path))
        if row is None:
            continue
        if row["status"] != "ok":
            summary.failed.append((row["input"], row["reason"]))
            continue
        for frame in row["frames"]:
            summary.done.append({"input": row["input"] + frame["suffix"], **frame,
                                 "output": next(o for o in row["outputs"]
                                                if o.endswith(f"{frame['suffix']}.enhanced.png"))})
    if summary.done and rows:
        from skinedge.atomic import write_bytes_atomic

        write_bytes_atomic(out / "index.html", gallery(summary).encode("utf-8"))
    log(f"{len(summary.done)} enhanced, {len(summary.failed)} failed; outputs in {out}/, one line per input in "
        f"{out / RESULTS}")
    if summary.failed:
        raise SkinedgeError(f"{len(summary.failed)} input(s) failed (see {out / RESULTS} and the lines above)")
    return rows


def _torn(path: Path) -> bool:
    """Whether a file's last byte is not a newline (an empty file is not torn)."""
    with open(path, "rb") as f:
        if not f.seek(0, os.SEEK_END):
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _run(ray, todo, resuming: bool, address, workers, gpus_per_worker, log, args, out: Path) -> list[dict]:
    """Start or join the cluster, stream the inputs through the actor pool, append each result line."""
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                     configure_logging=True)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, ValueError for a bad address ...
            raise SkinedgeError(f"--ray {address or '(local)'}: cannot start or reach the cluster ({exc})") from None
    try:
        import ray.data

        for name in ("ray", "ray.data"):  # Ray Data's own INFO/WARNING lines stay off the console
            logging.getLogger(name).setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = workers or (max(1, int(ray.cluster_resources().get("GPU", 0))) if gpus_per_worker else max(1, cpus))
        log(f"ray: {'local cluster' if started_here and not address else address or 'the running cluster'}, "
            f"{cpus} CPU(s); {pool} worker(s), each with one open session")
        items = [{"path": str(p), "stem": s, "redo": resuming} for p, s in todo]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        resources = {"num_gpus": gpus_per_worker} if gpus_per_worker else {"num_cpus": 1}
        results = ds.map_batches(Enhancer, fn_constructor_args=args, batch_size=1, concurrency=pool, **resources)
        rows = []
        with open(out / RESULTS, "a", encoding="utf-8") as table:
            if _torn(out / RESULTS):  # a killed job may have left a torn last line: start on a line of our own
                table.write("\n")
            for record in results.iter_rows():
                row = json.loads(record["row"])
                table.write(json.dumps(row) + "\n")
                table.flush()
                os.fsync(table.fileno())
                rows.append(row)
                why = f": {row['reason']}" if row["reason"] else ""
                log(f"{'ok  ' if row['status'] == 'ok' else 'FAIL'} {Path(row['input']).name}{why} "
                    f"({row['seconds'] * 1000:.0f} ms, {row['worker']})")
    finally:
        if started_here:
            ray.shutdown()
    order = {str(p): i for i, (p, _) in enumerate(todo)}
    return sorted(rows, key=lambda r: order[r["input"]])
