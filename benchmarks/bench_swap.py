"""The prod endpoint under load while a blue/green deploy swaps its model (local twin).

    .venv/bin/python benchmarks/bench_swap.py [--clients 8] [--before 3] [--after 3] [--swaps 3]

What runs:

* two versions of the churn model (``include/training/train.py``'s logistic regression pipeline
  fitted on 3,000 generated customers with two regularisation strengths), packed as ``model.tar.gz`` artifacts;
  their probabilities differ on every record sent, so each answer tells which model gave it;
* a local model runtime serving version A on ``churn-classifier-prod``, deployed as
  ``deploy_model`` deploys prod: an instance endpoint with the blue/green deployment config of
  ``include/pipelines/churn.yaml`` (checked against SageMaker's limits, then an atomic swap here);
* ``--clients`` threads, each with a keep-alive connection, POST one CSV body of 5 records to
  ``/endpoints/churn-classifier-prod/invocations`` back to back; after ``--before`` seconds the
  endpoint is updated to version B (:meth:`LocalHosting.deploy`, the call the deploy task makes),
  then back to A, ``--swaps`` times, with ``--after`` seconds of load after each.

Every answer is classified: all 5 records as model A predicts them, all 5 as B, or a **mix**
(anything else). Prints requests served, errors, mixed answers, the answers from the old model
after a swap returned (a request sent once the deploy call had returned must be the new model's),
and p50/p99 latency of the requests sent while a swap was in progress and of the others.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

ENDPOINT = "churn-classifier-prod"
RECORDS = 5
# Two regularisation strengths: cheap to fit on a busy machine, different probabilities on every record.
VERSIONS = {"A": {"C": 1.0}, "B": {"C": 0.01}}


@dataclass
class Answer:
    sent: float
    took: float
    status: int
    model: str  # "A", "B", "mix" or "" (an error)


@dataclass
class SwapRun:
    answers: list[Answer] = field(default_factory=list)
    swaps: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, new model)

    def during_swap(self, answer: Answer) -> bool:
        return any(start <= answer.sent <= end for start, end, _ in self.swaps)

    def old_after_swap(self) -> list[Answer]:
        """Answers from the previous model to requests sent after a swap's deploy call returned
        (and before the next swap began)."""
        late = []
        for index, (_, end, model) in enumerate(self.swaps):
            following = self.swaps[index + 1][0] if index + 1 < len(self.swaps) else float("inf")
            late += [a for a in self.answers if end < a.sent < following and a.model not in (model, "")]
        return late

    def summary(self) -> dict:
        def percentile(values: list[float], q: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

        swapping = [a.took for a in self.answers if a.status == 200 and self.during_swap(a)]
        steady = [a.took for a in self.answers if a.status == 200 and not self.during_swap(a)]
        return {
            "requests": len(self.answers),
            "errors": sum(a.status != 200 for a in self.answers),
            "mixed": sum(a.model == "mix" for a in self.answers),
            "old_model_after_swap": len(self.old_after_swap()),
            "by_model": {m: sum(a.model == m for a in self.answers) for m in ("A", "B")},
            "swaps": len(self.swaps),
            "swap_seconds": [round(end - start, 3) for start, end, _ in self.swaps],
            "during_swaps": {"requests": len(swapping), "p50_ms": percentile(swapping, 0.5),
                             "p99_ms": percentile(swapping, 0.99)},
            "steady": {"requests": len(steady), "p50_ms": percentile(steady, 0.5),
                       "p99_ms": percentile(steady, 0.99),
                       "mean_ms": statistics.fmean(steady) * 1000 if steady else None},
        }


def fit_versions(folder: Path) -> tuple[str, dict[str, tuple[str, str, list[str]]]]:
    """The CSV body sent, and per version (artifact URI, sha256, the answer lines it gives)."""
    import yaml

    from mlops.core.entrypoints import generators_module, inference_module, training_module
    from mlops.core.storage import pack_model

    train, inference = training_module(), inference_module()
    schema = yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())["schema"]
    config = {"feature_columns": schema["categorical"] + schema["numeric"], "categorical": schema["categorical"],
              "target": schema["target"], "problem_type": "binary", "estimator": "logistic_regression",
              "objective": "roc_auc", "positive_label": schema["positive_label"], "seed": 42}
    frame = generators_module().churn(3000, seed=7)
    records = generators_module().churn(RECORDS, seed=99)[config["feature_columns"]]
    body = records.to_csv(index=False, header=False)
    versions = {}
    for name, hyperparameters in VERSIONS.items():
        model_dir = folder / name
        pipeline, meta = train.fit_full(frame, config, hyperparameters)
        train.save_model(pipeline, meta, model_dir)
        uri, sha = pack_model(model_dir, (folder / "artifacts" / name / "model.tar.gz").as_uri())
        model = inference.model_fn(str(model_dir))
        prediction = inference.predict_fn(inference.parse_request(body.encode(), "text/csv", model), model)
        text, _ = inference.write_response(prediction, "text/csv", inference.response_keys(model, {}))
        versions[name] = (uri, sha, text.strip().splitlines())
    if versions["A"][2] == versions["B"][2]:
        raise RuntimeError("the two versions answer alike: their answers could not be told apart")
    return body, versions


def model_of(text: str, expected: dict[str, list[str]], tolerance: float = 1e-9) -> str:
    """Which model gave the CSV answer ``text``: the one whose every record it matches (label
    equal, probability within ``tolerance``: a model's arithmetic on a batch of 5 records and on
    a larger batch the runtime combined differs in the last bits), else ``mix``."""
    def parse(lines: list[str]) -> list[tuple[str, float]]:
        return [(label, float(probability)) for label, probability in (line.rsplit(",", 1) for line in lines)]

    got = parse(text.strip().splitlines())
    for name, lines in expected.items():
        want = parse(lines)
        if len(got) == len(want) and all(g[0] == w[0] and abs(g[1] - w[1]) <= tolerance for g, w in zip(got, want)):
            return name
    return "mix"


def prod_spec(version: str, uri: str, sha: str, swap: int):
    from mlops.backends.base import EndpointSpec
    from mlops.core.config import load_pipeline
    from mlops.deploy.endpoint_options import blue_green_deployment_config, instance_count

    prod = load_pipeline("churn").section("endpoint")["prod"]
    return EndpointSpec(ENDPOINT, f"{ENDPOINT}-config-{swap}-{version}", uri, sha, instance_type=prod["instance_type"],
                        initial_instance_count=instance_count(prod),
                        deployment_config=blue_green_deployment_config(ENDPOINT, prod))


def swap_under_load(home: Path, clients: int = 8, before: float = 3.0, after: float = 3.0,
                    swaps: int = 3) -> SwapRun:
    """Serve A, load it with ``clients``, swap A->B->A... ``swaps`` times; return every answer."""
    from mlops.backends.local.hosting import LocalHosting
    from mlops.core.settings import Settings

    socket_port = _free_port()
    settings = Settings(backend="local", home=home, data_uri=(home / "data").as_uri(), aws_conn_id="aws_default",
                        runtime_port=socket_port)
    body, versions = fit_versions(home / "models")
    expected = {name: lines for name, (_, _, lines) in versions.items()}
    hosting = LocalHosting(settings)
    run = SwapRun()
    done = threading.Event()
    lock = threading.Lock()

    def classify(text: str) -> str:
        return model_of(text, expected)

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", socket_port, timeout=60)
        path = f"/endpoints/{ENDPOINT}/invocations"
        mine = []
        while not done.is_set():
            sent = time.monotonic()
            try:
                connection.request("POST", path, body=body.encode(),
                                   headers={"Content-Type": "text/csv", "Accept": "text/csv"})
                response = connection.getresponse()
                text = response.read().decode()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", socket_port, timeout=60)
                text, status = "", 599
            took = time.monotonic() - sent
            mine.append(Answer(sent, took, status, classify(text) if status == 200 else ""))
        connection.close()
        with lock:
            run.answers.extend(mine)

    try:
        hosting.deploy(prod_spec("A", *versions["A"][:2], swap=0))
        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        time.sleep(before)
        current = "A"
        for swap in range(1, swaps + 1):
            current = "B" if current == "A" else "A"
            start = time.monotonic()
            hosting.deploy(prod_spec(current, *versions[current][:2], swap=swap))
            run.swaps.append((start, time.monotonic(), current))
            time.sleep(after)
        done.set()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        done.set()
        hosting.stop_runtime()
    return run


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before the first swap")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of load after each swap")
    parser.add_argument("--swaps", type=int, default=3)
    args = parser.parse_args(argv)
    if args.clients < 1 or args.swaps < 1 or args.before <= 0 or args.after <= 0:
        parser.error("--clients and --swaps must be at least 1, --before and --after positive")
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as folder:
        summary = swap_under_load(Path(folder), args.clients, args.before, args.after, args.swaps).summary()
    for key, value in summary.items():
        print(f"{key}: {value}")
    ok = summary["errors"] == 0 and summary["mixed"] == 0 and summary["old_model_after_swap"] == 0
    print(f"requests={summary['requests']} errors={summary['errors']} mixed={summary['mixed']} "
          f"swap_p99_ms={summary['during_swaps']['p99_ms']} steady_p99_ms={summary['steady']['p99_ms']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
