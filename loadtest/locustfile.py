"""Locust users that behave like RL trainers calling Libra Serve.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000     # settings: [tool.locust] in pyproject.toml
    make loadtest                                                      # headless run + report (loadtest/run.py)

- ``GRPOTrainer``: batches of 8-512 items, groups of ``--group-size`` responses per question, a
  ``--dup-share`` of duplicate responses, long-tailed response lengths; sends its next batch as soon as
  it has its rewards, as a trainer does.
- ``SingleItem``: one item per request (curl-like).
- ``OpenRLHF``: ``/get_reward`` with chat-formatted queries, as OpenRLHF's remote reward model sends.

A 200 whose body lacks a result (or a reward list entry) per item is a failure, and so is a 429: the
load is then past capacity. At the end the run fails (exit 1) when the failure ratio or the p95
latency breaks the SLO (``--slo-fail-ratio``, ``--slo-p95-ms``). Requests still in flight when the run
time ends are finished and counted (``stop-timeout`` in ``[tool.locust]``), so the slowest are not dropped.
"""

from __future__ import annotations

import csv
import logging
import random

from locust import FastHttpUser, between, events, stats, task
from workloads import rl_items, unique_items

from service.judge.types import ItemStatus

STATUSES = {s.value for s in ItemStatus}  # the server's own list: a new status is never a "failure"
BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512)
BATCH_WEIGHTS = (2, 3, 4, 4, 3, 2, 1)


@events.init_command_line_parser.add_listener
def _(parser):
    parser.add_argument("--group-size", type=int, default=8, help="responses per question (GRPO group)")
    parser.add_argument("--dup-share", type=float, default=0.25, help="share of duplicate responses")
    parser.add_argument("--max-batch", type=int, default=512, help="largest batch a trainer sends")
    parser.add_argument("--slo-fail-ratio", type=float, default=0.01, help="fail the run above this failure ratio")
    parser.add_argument("--slo-p95-ms", type=float, default=120_000, help="fail the run above this p95 latency")


@events.quitting.add_listener
def _(environment, **_kw):
    write_final_csv(environment)
    total = environment.stats.total
    opts = environment.parsed_options
    p95 = total.get_response_time_percentile(0.95) or 0.0
    problems = []
    if total.num_requests == 0:
        problems.append("no request completed")
    if total.fail_ratio > opts.slo_fail_ratio:
        problems.append(f"failure ratio {total.fail_ratio:.3f} > {opts.slo_fail_ratio}")
    if p95 > opts.slo_p95_ms:
        problems.append(f"p95 {p95:.0f} ms > {opts.slo_p95_ms:.0f} ms")
    if problems:
        logging.error("SLO breached: %s", "; ".join(problems))
        environment.process_exit_code = 1
    else:
        logging.info("SLO met: failure ratio %.4f, p95 %.0f ms over %d requests", total.fail_ratio, p95,
                     total.num_requests)


def write_final_csv(environment) -> None:
    """Rewrite ``--csv``'s stats, failures and exceptions files from the final counts. Locust writes them once
    a second while the run goes on and not again at exit (locust issues #1806, #2299), so the requests that
    finish in the last second, and every request a run shorter than one request finishes at its stop
    timeout, were missing from the CSV (and from ``summary.json``, which ``run.py`` reads from it) though
    counted in the SLO verdict below."""
    prefix = environment.parsed_options.csv_prefix
    if not prefix:
        return
    final = stats.StatsCSV(environment, stats.PERCENTILES_TO_REPORT)
    for suffix, write in (("stats", final.requests_csv), ("failures", final.failures_csv),
                          ("exceptions", final.exceptions_csv)):
        with open(f"{prefix}_{suffix}.csv", "w", newline="") as fh:
            write(csv.writer(fh))


def check_results(resp, n: int) -> None:
    """Mark the response failed unless it is a 200 with one well-formed result per item."""
    if resp.status_code != 200:
        resp.failure(f"HTTP {resp.status_code}: {resp.text[:200] if resp.text else ''}")
        return
    try:
        results = resp.json()["results"]
    except (ValueError, KeyError, TypeError):
        resp.failure("200 without a results list")
        return
    if len(results) != n:
        resp.failure(f"{len(results)} results for {n} items")
    elif any(r.get("status") not in STATUSES or r.get("index") != i for i, r in enumerate(results)):
        resp.failure("a result without a known status or out of order")


class GRPOTrainer(FastHttpUser):
    weight = 4
    wait_time = between(0.0, 0.2)
    network_timeout = 900.0
    connection_timeout = 10.0

    def on_start(self):
        self.rng = random.Random()

    @task
    def score_batch(self):
        opts = self.environment.parsed_options
        sizes = [s for s in BATCH_SIZES if s <= opts.max_batch] or [opts.max_batch]
        n = self.rng.choices(sizes, weights=BATCH_WEIGHTS[: len(sizes)])[0]
        items = rl_items(self.rng, n, opts.group_size, opts.dup_share, pad=True)
        with self.client.post("/score", json={"items": items}, name=f"/score grpo (batch {n})",
                              catch_response=True) as resp:
            check_results(resp, n)


class SingleItem(FastHttpUser):
    weight = 1
    wait_time = between(0.2, 1.0)
    network_timeout = 300.0

    def on_start(self):
        self.rng = random.Random()

    @task
    def score_one(self):
        items = unique_items(self.rng, 1, pad=True)
        with self.client.post("/score", json={"items": items}, name="/score single", catch_response=True) as resp:
            check_results(resp, 1)


def chatml(question: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


class OpenRLHF(FastHttpUser):
    weight = 1
    wait_time = between(0.0, 0.5)
    network_timeout = 900.0

    def on_start(self):
        self.rng = random.Random()

    @task
    def get_reward(self):
        items = rl_items(self.rng, 32, self.environment.parsed_options.group_size, 0.25, pad=True)
        prompts = [chatml(it["question"]) for it in items]
        queries = [p + it["response"] + "<|im_end|>" for p, it in zip(prompts, items, strict=True)]
        with self.client.post("/get_reward", json={"query": queries, "prompts": prompts}, name="/get_reward",
                              catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return
            try:
                rewards = resp.json()["rewards"]
            except (ValueError, KeyError, TypeError):
                resp.failure("200 without rewards")
                return
            if len(rewards) != len(queries) or not all(isinstance(r, int | float) for r in rewards):
                resp.failure(f"{len(rewards)} rewards for {len(queries)} queries")
