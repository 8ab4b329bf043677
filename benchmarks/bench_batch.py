"""The project's local batch transform vs read-all, predict, write-all, at 1M and 4M rows.

    .venv/bin/python benchmarks/bench_batch.py                     # 1M and 4M rows, 2 workers
    .venv/bin/python benchmarks/bench_batch.py --rows 100000 400000  # a quick look

Both sides score the same churn-shaped, headerless CSV (``Phone`` id first, then the 19 feature
columns, as ``prepare_transform_input`` writes it) with the same fitted model (the training
entry point's scikit-learn pipeline, packed and registered like a real model) through the same
serving handlers (``include/serving/inference.py``: ``model_fn``, ``input_fn``, ``predict_fn``,
``output_fn``), with the DAG's DataProcessing: input filter ``$[1:]`` (drop the id), join source,
output filter ``$[0,-4,-3,-2,-1]`` (id + the four Autopilot response keys). They write the same
bytes: the script checks the two 1M outputs are identical.

* **ours**: ``LocalBatchTransform`` (streaming mini-batches of ``--chunk-rows`` lines, ``--n-jobs``
  worker processes, at most ``2 * n_jobs`` mini-batches in flight, ordered writes).
* **naive**: read the whole file, parse every record, build one frame (``input_fn`` per
  100,000-record slice, the handler's request limit, then one ``concat``), one ``predict_fn``,
  one ``output_fn``, join the ids back and write everything at once; one process.

Each side runs alone in a fresh subprocess, timed from just before the work (model loading,
worker start-up and output writing included) to its end. Throughput = rows / wall seconds.

Peak memory, and why it is measured this way:

* naive is one process: its peak is ``getrusage(RUSAGE_SELF).ru_maxrss``, exact.
* ours is the transform process plus ``n_jobs`` worker processes it spawns and reaps (and
  multiprocessing's small resource tracker). ``RUSAGE_CHILDREN.ru_maxrss`` is the peak of the
  *largest single* descendant, not of the tree, so the script reports
  ``self + n_jobs * largest descendant``: the workers live at the same time and none exceeds
  that peak, so this bounds their simultaneous peak from above. As a cross-check the driver
  samples the whole process tree every 50 ms (sum of every process's RSS) and prints that peak
  and the processes it was made of; sampling can miss a short spike, getrusage cannot.

The naive side uses the libraries' default native threads (an OpenMP team as wide as the
machine for the gradient-boosting predict), as a plain script would; ``--naive-threads 1``
runs it single-threaded instead. On a loaded machine a full-width OpenMP team spin-waits for
its descheduled threads and gets much slower, which flatters ours (its workers predict with one
thread each): compare both settings there. CPU seconds (user + system, children included) are
printed for each side.

The last line is ``throughput_ratio=<ours/naive at the first size> rss_1m_mb=<ours at the first
size> rss_4m_mb=<ours at the second size> naive_rss_1m_mb=<naive at the first size>``. Goals:
ratio >= 1.5 and rss_4m within 10% of rss_1m (memory independent of the input size).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

MODEL_NAME = "bench-churn"
KEYS = ["predicted_label", "probability", "labels", "probabilities"]
INPUT_FILTER, OUTPUT_FILTER = "$[1:]", "$[0,-4,-3,-2,-1]"
BLOCK_ROWS = 1_000_000
MAX_ROWS_PER_REQUEST = 100_000


# ---------------------------------------------------------------- setup (in the driver)
def build_model(home: Path) -> None:
    """Fit the training entry point's pipeline on 5,000 churn rows; pack and register it."""
    from mlops.backends.local.automl import FlamlAutoML
    from mlops.core.config import load_pipeline
    from mlops.core.entrypoints import generators_module, training_module
    from mlops.core.storage import pack_model

    config = load_pipeline("churn")
    train = training_module()
    frame = generators_module().churn(5000, seed=7)
    model, meta = train.fit_full(frame, {
        "target": config.target, "feature_columns": config.feature_columns,
        "categorical": config.schema["categorical"], "problem_type": "binary",
        "positive_label": config.schema["positive_label"], "estimator": "gradient_boosting", "seed": 42,
    }, {"max_iter": 100, "learning_rate": 0.1})
    model_dir = train.save_model(model, meta, home / "model")
    uri, sha256 = pack_model(model_dir, (home / "artifacts" / "model.tar.gz").as_uri())
    FlamlAutoML(home / "state" / "automl").register_model(MODEL_NAME, uri, sha256, "binary", KEYS)


def write_block(path: Path, block: int, rows: int) -> None:
    """``rows`` churn customers (seed = block), id first, no header; ids unique across blocks."""
    from mlops.core.config import load_pipeline
    from mlops.core.entrypoints import generators_module

    config = load_pipeline("churn")
    frame = generators_module().churn(rows, seed=block)
    frame[config.schema["id_column"]] = f"b{block}-" + frame[config.schema["id_column"]].astype(str)
    frame[[config.schema["id_column"], *config.feature_columns]].to_csv(path, header=False, index=False)


def build_input(workdir: Path, rows: int) -> Path:
    """A CSV of ``rows`` lines made of 1M-row blocks (cached in ``workdir``)."""
    path = workdir / f"input-{rows}" / "records.csv"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        done, block = 0, 1
        while done < rows:
            n = min(BLOCK_ROWS, rows - done)
            block_path = workdir / "blocks" / f"block-{block}-{n}.csv"
            if not block_path.exists():
                block_path.parent.mkdir(parents=True, exist_ok=True)
                write_block(block_path, block, n)
            out.write(block_path.read_bytes())
            done, block = done + n, block + 1
    partial.replace(path)
    return path


# ---------------------------------------------------------------- the two sides (in fresh subprocesses)
def run_ours(home: Path, input_path: Path, out_dir: Path, chunk_rows: int, n_jobs: int) -> dict:
    from mlops.backends.local.automl import FlamlAutoML
    from mlops.backends.local.transform import LocalBatchTransform

    transform = LocalBatchTransform(FlamlAutoML(home / "state" / "automl"), chunk_rows=chunk_rows, n_jobs=n_jobs)
    started = time.perf_counter()
    result = transform.transform("bench-transform", MODEL_NAME, input_path.as_uri(), out_dir.as_uri(),
                                 input_filter=INPUT_FILTER, join_source=True, output_filter=OUTPUT_FILTER)
    seconds = time.perf_counter() - started
    return {"rows": result.output_rows, "seconds": seconds, "output": str(out_dir / "records.csv.out")}


def run_naive(home: Path, input_path: Path, out_dir: Path, threads: int | None) -> dict:
    import pandas as pd

    from mlops.backends.local.automl import FlamlAutoML
    from mlops.core.entrypoints import inference_module
    from mlops.core.storage import unpack_model

    inference = inference_module()
    record = FlamlAutoML(home / "state" / "automl").describe_model(MODEL_NAME)
    model_dir = Path(tempfile.mkdtemp(prefix="bench-naive-"))
    started = time.perf_counter()
    unpack_model(record["PrimaryContainer"]["ModelDataUrl"], model_dir, record["sha256"])
    model = inference.model_fn(str(model_dir))
    if threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    keys = inference.response_keys(model, record["PrimaryContainer"]["Environment"])
    with input_path.open(encoding="utf-8") as handle:  # read all
        records = [row for row in csv.reader(handle) if row]
    frames = []
    for start in range(0, len(records), MAX_ROWS_PER_REQUEST):  # the handler's request limit
        body = io.StringIO()
        csv.writer(body, lineterminator="\n").writerows(r[1:] for r in records[start:start + MAX_ROWS_PER_REQUEST])
        frames.append(inference.input_fn(body.getvalue(), "text/csv", model))
    frame = pd.concat(frames, ignore_index=True)
    del frames
    prediction = inference.predict_fn(frame, model)  # predict all
    text, _ = inference.output_fn(prediction, "text/csv", keys)
    predicted = list(csv.reader(io.StringIO(text)))
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / "records.csv.out"
    with output.open("w", newline="", encoding="utf-8") as handle:  # write all
        csv.writer(handle, lineterminator="\n").writerows([r[0], *p] for r, p in zip(records, predicted))
    seconds = time.perf_counter() - started
    return {"rows": len(predicted), "seconds": seconds, "output": str(output)}


def side_main(args) -> None:
    os.environ["MLOPS_HOME"] = str(args.home)
    os.environ["MLOPS_BACKEND"] = "local"
    if args.side == "ours":
        report = run_ours(args.home, args.input, args.out, args.chunk_rows, args.n_jobs)
    else:
        report = run_naive(args.home, args.input, args.out, args.naive_threads)
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    report["ru_maxrss_self_mb"] = own.ru_maxrss / 1024
    report["ru_maxrss_children_mb"] = children.ru_maxrss / 1024
    report["cpu_seconds"] = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    print("RESULT " + json.dumps(report), flush=True)


# ---------------------------------------------------------------- the driver
def sample_tree(pid: int, peak: list, stop: threading.Event) -> None:
    """Peak over time of the summed RSS of ``pid`` and all its descendants (MiB), every 50 ms,
    with the RSS of each process at that moment."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while not stop.is_set():
        parts = []
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for process in processes:
            try:
                parts.append(process.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                pass
        if sum(parts) > peak[0]:
            peak[0], peak[1] = sum(parts), parts
        stop.wait(0.05)


def run_side(side: str, home: Path, input_path: Path, out_dir: Path, args) -> dict:
    shutil.rmtree(out_dir, ignore_errors=True)  # a transform whose _SUCCESS names it would be reused
    command = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--home", str(home), "--input",
               str(input_path), "--out", str(out_dir), "--chunk-rows", str(args.chunk_rows), "--n-jobs",
               str(args.n_jobs), *(["--naive-threads", str(args.naive_threads)] if args.naive_threads else [])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak, stop = [0.0, []], threading.Event()
    sampler = threading.Thread(target=sample_tree, args=(process.pid, peak, stop), daemon=True)
    sampler.start()
    stdout, _ = process.communicate()
    stop.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{side} failed with exit code {process.returncode}")
    report = json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT "))[7:])
    report["tree_peak_rss_mb"], report["tree_peak_parts_mb"] = peak[0], [round(p) for p in peak[1]]
    if side == "ours":
        report["rss_mb"] = report["ru_maxrss_self_mb"] + args.n_jobs * report["ru_maxrss_children_mb"]
    else:
        report["rss_mb"] = report["ru_maxrss_self_mb"]
    report["rows_per_s"] = report["rows"] / report["seconds"]
    return report


def digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            sha.update(chunk)
    return sha.hexdigest()


def describe(label: str, report: dict) -> None:
    print(f"{label:14s} {report['rows']:>9,d} rows  {report['seconds']:7.1f} s  {report['rows_per_s']:>8,.0f} rows/s  "
          f"cpu {report['cpu_seconds']:6.1f} s  peak RSS {report['rss_mb']:5.0f} MiB (getrusage: self "
          f"{report['ru_maxrss_self_mb']:.0f}, largest descendant {report['ru_maxrss_children_mb']:.0f}; sampled "
          f"tree {report['tree_peak_rss_mb']:.0f} = {' + '.join(map(str, report['tree_peak_parts_mb']))})", flush=True)


def setup_main(args) -> None:
    os.environ["MLOPS_HOME"] = str(args.home)
    os.environ["MLOPS_BACKEND"] = "local"
    if not (args.home / "state" / "automl" / "models" / f"{MODEL_NAME}.json").exists():
        build_model(args.home)
    for rows in args.rows:
        build_input(args.home.parent, rows)


def driver_main(args) -> None:
    small, large = args.rows
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-batch-"))
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"
    started = time.perf_counter()
    # Setup runs in its own process so that this driver stays small: a child's ru_maxrss starts
    # from the RSS of the process that started it (Linux records the pre-exec image's peak).
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--setup", "--home", str(home), "--rows",
                    str(small), str(large)], check=True, stdout=subprocess.DEVNULL)
    inputs = {rows: workdir / f"input-{rows}" / "records.csv" for rows in (small, large)}
    print(f"setup: model and inputs ({', '.join(f'{r:,d}' for r in inputs)} rows) in "
          f"{time.perf_counter() - started:.0f} s under {workdir}; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; chunk_rows={args.chunk_rows} n_jobs={args.n_jobs} "
          f"naive_threads={args.naive_threads or 'default'}", flush=True)

    naive = run_side("naive", home, inputs[small], workdir / "out-naive", args)
    describe(f"naive {small // 1000}k", naive)
    ours_small = run_side("ours", home, inputs[small], workdir / f"out-ours-{small}", args)
    describe(f"ours {small // 1000}k", ours_small)
    same = digest(naive["output"]) == digest(ours_small["output"])
    print(f"outputs identical: {'yes' if same else 'NO'}", flush=True)
    ours_large = run_side("ours", home, inputs[large], workdir / f"out-ours-{large}", args)
    describe(f"ours {large // 1000}k", ours_large)
    if not same:
        raise SystemExit("the two sides wrote different predictions")
    ratio = ours_small["rows_per_s"] / naive["rows_per_s"]
    growth = ours_large["rss_mb"] / ours_small["rss_mb"] - 1
    print(f"throughput ratio {ratio:.2f} (goal >= 1.5); our peak RSS at {large:,d} rows is {growth:+.1%} of "
          f"{small:,d} rows (goal within 10%); total {time.perf_counter() - started:.0f} s; load average now "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    print(f"throughput_ratio={ratio:.2f} rss_1m_mb={ours_small['rss_mb']:.0f} rss_4m_mb={ours_large['rss_mb']:.0f} "
          f"naive_rss_1m_mb={naive['rss_mb']:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs=2, default=[1_000_000, 4_000_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--chunk-rows", type=int, default=5000)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--naive-threads", type=int, help="native threads for the naive side (default: the "
                                                           "libraries' default)")
    parser.add_argument("--workdir", help="keep inputs here between runs (default: a new temp folder)")
    parser.add_argument("--side", choices=["ours", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side_main(args)
    elif args.setup:
        setup_main(args)
    else:
        driver_main(args)


if __name__ == "__main__":
    main()
