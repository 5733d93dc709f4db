"""Every shipped judge profile end to end on the real engine, in the Qwen-vocabulary world: Qwen's real
BPE vocabulary and added tokens, our Qwen3-style chat template, a random-weight 2-layer Qwen3 model
(``nano/qwen.py``, ``nano/random_model.py``). Items of realistic length, up to the context limit.

Random weights rarely give a verdict: most judgments run to their thinking budget and are forced, so
the rewards come from each profile's map. What this proves is that every profile renders, fits,
tokenizes as the model's tokenizer does and comes back with a valid status -- none lost, none an error.
"""

from __future__ import annotations

import random

import httpx
import pytest

from libra_eval.server_process import ServerProcess
from service.judge.profiles import list_profiles, load_profile
from tests.helpers import QUICK_START

pytestmark = pytest.mark.integration

CONTEXT = 16384
# Generative profiles: the scalar ones run on a reward model (test_scalar_live.py).
# Rubric judges need a rubric per item: test_rubrics_on_the_real_engine.
PROFILES = [name for name in list_profiles()
            if name != "nano" and not load_profile(name).scalar and load_profile(name).rubric_strategy is None]
VALID = {"ok", "forced", "unparsed", "truncated", "too_long", "no_answer"}
# No "is": word salad must not form "the answer is <words>", a final-answer statement that would make the
# item a hedge (refused before the engine, never reaching the truncation this test checks).
WORDS = ("the carry goes to the next column so we add one more and check the digit against the answer "
         "because each step must hold before the final line gets written down").split()


@pytest.fixture(scope="module")
def qwen_server(qwen_world, tmp_path_factory):
    log = tmp_path_factory.mktemp("qwen-server") / "libra-serve.log"
    args = ["--model", str(qwen_world), "--judge", "libra", "--dtype", "float32", "--max-model-len", str(CONTEXT),
            "--max-num-seqs", "64", *QUICK_START]
    with ServerProcess(args, log_path=log) as server:
        yield server


def text_of(tokens: int, rng: random.Random) -> str:
    """About ``tokens`` Qwen tokens of prose (one word ~ one token), ending in a final answer."""
    words = [rng.choice(WORDS) for _ in range(max(1, tokens - 8))]
    for i in range(12, len(words), 13):
        words[i] += ".\n" if i % 3 else ","
    return " ".join(words) + "\n\nFinal Answer: \\boxed{42}"


def items(rng: random.Random) -> list[dict]:
    sizes = [100, 400, 1500, 4000, 8000, CONTEXT - 300, 26000]  # the last two: at and over the limit
    question = "Alice has some apples. " + " ".join(rng.choice(WORDS) for _ in range(280)) + " How many in all?"
    return [{"id": f"r{n}", "question": question, "response": text_of(n, rng), "reference": "42"} for n in sizes]


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_end_to_end_on_the_real_engine(qwen_server, qwen_tokenizer, name):
    profile = load_profile(name)
    batch = items(random.Random(name))
    resp = httpx.post(qwen_server.url_for("score"), timeout=600, json={
        "judge": name, "items": batch, "return_prompt": True, "max_thinking_tokens": 16, "cache": False})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["id"] for r in results] == [i["id"] for i in batch]  # one result per item, in order
    for r in results:
        assert r["status"] in VALID, r
        if r["status"] in ("ok", "forced"):
            assert r["reward"] == profile.reward_for(r["verdict"])
    statuses = [(r["status"], r["message"]) for r in results]
    assert sum(r["status"] == "forced" for r in results) >= len(batch) - 2, statuses
    if profile.response_input == "full":  # (a judge shown only the final answer never needs the cut)
        assert results[-1]["truncated_input"] and not results[0]["truncated_input"]  # over the context: cut
    for r in results:  # the prompt the engine got is the model tokenizer's encoding of the rendered prompt
        if profile.prompt is not None:
            ids = qwen_tokenizer(r["prompt"][0]["content"])["input_ids"]
        else:
            ids = qwen_tokenizer.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True)
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        assert r["usage"]["prompt_tokens"] == len(ids), (name, r["id"])
        assert len(ids) < CONTEXT


def test_judges_say_where_each_profile_comes_from(qwen_server):
    listing = httpx.get(qwen_server.url_for("judges")).json()
    origins = {j["name"]: j["origin"] for j in listing["judges"]}
    assert origins["libra"].startswith("ours:") and origins["xverify"].startswith("published:")
    assert {j["name"]: j["score"] for j in listing["judges"]}["j1-pointwise"] == {"min": 0.0, "max": 10.0}


def test_direct_first_runs_end_to_end_on_the_real_engine(qwen_server):
    """The mechanics of the direct-first cascade on vLLM: the direct pass (a constrained choice with its
    logprobs after the empty thinking block) and, where it is unsure, the thinking pass; a random model's
    probabilities mean nothing, so the test checks only what every outcome must hold."""
    batch = items(random.Random("direct"))[:4]
    for threshold in (0.51, 1.0):
        resp = httpx.post(qwen_server.url_for("score"), timeout=600, json={
            "judge": "libra", "items": batch, "direct_first": True, "direct_threshold": threshold,
            "max_thinking_tokens": 16, "cache": False})
        assert resp.status_code == 200, resp.text
        for r in resp.json()["results"]:
            assert r["status"] in VALID and r["judge_pass"] in ("direct", "thinking"), r
            if r["judge_pass"] == "direct":
                # one generated token: its first character names the choice (the rest the constraint would force)
                assert r["direct_prob"] >= threshold and r["status"] == "ok" and r["usage"]["completion_tokens"] == 1
            else:
                assert r["direct_prob"] is None or r["direct_prob"] < threshold
                assert r["usage"]["completion_tokens"] >= 2  # the direct pass, then the thinking


RUBRIC = [{"id": "sum", "text": "The response states the final answer 42.", "weight": 5, "veto": True},
          {"id": "steps", "text": "The response explains each step.", "weight": 3},
          {"id": "rude", "text": "The response insults the reader <|im_end|>.", "weight": 2, "polarity": "negative"},
          {"text": "The response is under 200 words.", "weight": 1}]


def test_rubrics_on_the_real_engine(qwen_server):
    """Both rubric strategies on vLLM: a random model's forced verdicts mean nothing, so the test checks what
    every outcome must hold: one judgment per criterion (forced at a 16-token budget), the item's reward the
    rule's aggregate of its components, the whole rubric rated once by the holistic judge, a special-token
    string in a criterion kept as text, one streamed line per item, and the shared prefix served by vLLM's
    prefix cache."""
    from service.judge.rubric import Criterion, aggregate
    from tests.helpers import scrape

    batch = [{k: v for k, v in i.items() if k != "reference"} for i in items(random.Random("rubric"))[:3]]
    hits = scrape(qwen_server, "vllm:prefix_cache_hits_total")
    resp = httpx.post(qwen_server.url_for("score"), timeout=600, json={
        "judge": "rubric-criterion", "items": batch, "rubric": RUBRIC, "max_thinking_tokens": 16, "cache": False})
    assert resp.status_code == 200, resp.text
    criteria = [Criterion(c["text"], c["weight"], c.get("polarity"), c.get("id"), c.get("veto", False))
                for c in RUBRIC]
    for r in resp.json()["results"]:
        assert r["status"] in ("ok", "forced") and len(r["components"]) == 4, r
        assert [c["status"] for c in r["components"]] == ["forced"] * 4
        assert r["reward"] == pytest.approx(aggregate(criteria, [c["reward"] for c in r["components"]], "weighted"))
        assert r["usage"]["completion_tokens"] >= 4 * 16
    # 3 responses x 4 criteria: each response's prompt up to its criterion came from the cache after the first
    assert scrape(qwen_server, "vllm:prefix_cache_hits_total") - hits > 3 * 3 * 100
    resp = httpx.post(qwen_server.url_for("score"), timeout=600, json={
        "judge": "rubric-criterion", "rubric_strategy": "holistic", "items": batch[:1], "rubric": RUBRIC,
        "max_thinking_tokens": 16, "cache": False, "return_prompt": True})
    [r] = resp.json()["results"]
    assert r["status"] == "forced" and 1 <= int(r["verdict"]) <= 10
    assert r["reward"] == pytest.approx((int(r["verdict"]) - 1) / 9)
    assert "3. Pitfall (must not happen) (weight 2): The response insults the reader <|im_end|>." in (
        r["prompt"][0]["content"])
    with httpx.stream("POST", qwen_server.url_for("score"), timeout=600, json={
            "judge": "rubric-criterion", "items": batch[:2], "rubric": RUBRIC[:2], "max_thinking_tokens": 16,
            "stream": True}) as streamed:
        lines = [line for line in streamed.iter_lines() if line]
    assert len(lines) == 3 and '"done":true' in lines[-1].replace(" ", "")
