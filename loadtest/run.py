"""``make loadtest``: run the locust RL-trainer load test headless and write a report.

    python loadtest/run.py [--host URL] [--run-time 60s] [--users 8] [--out DIR] [-- more locust flags]

Uses the service at ``--host`` (default http://127.0.0.1:8000) if one answers there, else starts one
(the bundled nano judge) for the run. Writes to ``--out`` (default reports/loadtest-TIMESTAMP):
locust's CSVs (with full history) and HTML report, ``throughput_latency.png`` (requests/s, items/s
and p50/p95/p99 latency over time), ``summary.json``, and the server log when it started one.
Exits with locust's code: non-zero when the SLO of ``[tool.locust]`` (failure ratio, p95) is broken.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from libra_eval.server_process import ServerProcess  # noqa: E402
from service.metrics import metric_sum  # noqa: E402


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class ItemSampler(threading.Thread):
    """Scrapes the service's item counter every ``every`` seconds: items/s over time for the chart."""

    def __init__(self, url: str, every: float = 2.0):
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while True:
            self.sample()
            if self.stop.wait(self.every):
                self.sample()  # once more when the run has ended, so its last interval's items count
                return

    def sample(self) -> None:
        try:
            text = httpx.get(self.url + "/metrics", timeout=5).text
            self.samples.append((time.time(), metric_sum(text, "libra_items_total")))
        except httpx.HTTPError:
            pass


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def num(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def chart(history: list[dict], items: list[tuple[float, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in history if r["Name"] == "Aggregated"]
    if not rows:
        return
    t0 = float(rows[0]["Timestamp"])
    t = [float(r["Timestamp"]) - t0 for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    top.plot(t, [num(r["Requests/s"]) or 0 for r in rows], label="requests/s")
    top.plot(t, [num(r["Failures/s"]) or 0 for r in rows], label="failures/s", color="#c44e52")
    if len(items) > 1:
        pairs = zip(items, items[1:], strict=False)
        rate = [((b[1] - a[1]) / (b[0] - a[0]), b[0] - t0) for a, b in pairs if b[0] > a[0]]
        ax2 = top.twinx()
        ax2.plot([x for _, x in rate], [r for r, _ in rate], color="#55a868", label="items/s (server)")
        ax2.set_ylabel("items/s")
        ax2.legend(loc="upper right", fontsize=8)
    top.set_ylabel("requests/s")
    top.legend(loc="upper left", fontsize=8)
    top.set_title("Libra Serve under locust: throughput and latency")
    for col, color in (("50%", "#4c72b0"), ("95%", "#dd8452"), ("99%", "#c44e52")):
        bottom.plot(t, [(num(r[col]) or 0) / 1000 for r in rows], label=f"p{col[:-1]}", color=color)
    bottom.set_ylabel("latency (s)")
    bottom.set_xlabel("seconds since start")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "throughput_latency.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra, argv = argv[argv.index("--") + 1:], argv[: argv.index("--")]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="http://127.0.0.1:8000")
    ap.add_argument("--run-time", default=None, help="locust --run-time (default: [tool.locust])")
    ap.add_argument("--users", type=int, default=None, help="locust --users (default: [tool.locust])")
    ap.add_argument("--spawn-rate", type=float, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--serve-args", default="", help="flags for the started server, when one is started")
    args = ap.parse_args(argv)
    out = args.out or ROOT / "reports" / time.strftime("loadtest-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)

    def run(url: str) -> int:
        cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless",
               "--host", url, "--csv", str(out / "locust"), "--csv-full-history", "--html", str(out / "locust.html")]
        for flag, value in (("--run-time", args.run_time), ("--users", args.users),
                            ("--spawn-rate", args.spawn_rate)):
            if value is not None:
                cmd += [flag, str(value)]
        sampler = ItemSampler(url)
        sampler.start()
        started = time.time()
        code = subprocess.run(cmd + extra, cwd=ROOT).returncode
        sampler.stop.set()
        sampler.join()
        history = read_csv(out / "locust_stats_history.csv")
        chart(history, sampler.samples, out)
        [total] = [r for r in read_csv(out / "locust_stats.csv") if r["Name"] == "Aggregated"]
        items = sampler.samples[-1][1] - sampler.samples[0][1] if len(sampler.samples) > 1 else 0
        span = sampler.samples[-1][0] - sampler.samples[0][0] if len(sampler.samples) > 1 else 0
        summary = {"host": url, "seconds": round(time.time() - started, 1), "requests": int(total["Request Count"]),
                   "failures": int(total["Failure Count"]), "requests_per_s": num(total["Requests/s"]),
                   "p50_ms": num(total["50%"]), "p95_ms": num(total["95%"]), "p99_ms": num(total["99%"]),
                   "items_scored": items, "items_per_s": round(items / span, 2) if span else None,
                   "locust_exit_code": code}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
        print(f"report: {out}")
        return code

    url = args.host.rstrip("/")
    if healthy(url):
        return run(url)
    print(f"no service at {url}; starting one (nano judge) for the run, log in {out / 'serve.log'}", flush=True)
    import shlex

    with ServerProcess(shlex.split(args.serve_args), log_path=out / "serve.log") as server:
        return run(server.url)


if __name__ == "__main__":
    sys.exit(main())
