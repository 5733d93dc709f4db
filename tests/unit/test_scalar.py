"""Scalar reward models around the engine, on a pooling FakeEngine (the real engine: tests/integration/
test_scalar_live.py): the profile kind, the HTTP contract (scores, pairs, groups, the 422s of what does not
apply, a profile of the other kind), the trainer routes, dedup, streaming, metrics and the launch's
refusal of a model of the wrong kind."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import pytest

from service.engine.base import RequestKind
from service.engine.fake import FakeEngine
from service.judge.profiles import ProfileError, load_profile, parse_profile
from tests.helpers import make_client, perfect_nano_judge

JUDGE = "skywork-reward-v2"


def fake_score(prompt: str) -> float:
    """A reward model that likes 'good' and dislikes 'bad' in the response (the assistant's turn)."""
    response = prompt.rsplit("assistant", 1)[-1]
    return 2.0 * response.count("good") - 3.0 * response.count("bad") + 0.25


@pytest.fixture
def engine(nano_tokenizer):
    return FakeEngine(nano_tokenizer, "", score=fake_score, max_model_len=1024)


@pytest.fixture
def client(engine):
    with make_client(engine, judge=JUDGE) as c:
        yield c


def score(client, items, **body):
    r = client.post("/score", json={"items": items, **body})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_a_scalar_item_is_one_classify_request_and_its_reward_is_the_raw_score(client, engine):
    [good, bad] = score(client, [{"question": "q", "response": "good good"}, {"question": "q", "response": "bad"}])
    assert (good["status"], good["reward"], good["score"]) == ("ok", 4.25, 4.25)
    assert (bad["reward"], bad["score"]) == (-2.75, -2.75)
    assert good["verdict"] is None and good["usage"]["completion_tokens"] == 0
    assert len(engine.calls_of(RequestKind.score)) == 2 and not engine.calls_of(RequestKind.judge)


def test_reward_mode_prob_is_the_scores_sigmoid(client):
    [r] = score(client, [{"question": "q", "response": "bad"}], reward_mode="prob")
    assert r["score"] == -2.75 and r["reward"] == pytest.approx(1 / (1 + math.exp(2.75)))


def test_duplicates_and_the_cache_cost_no_classify_request(client, engine):
    items = [{"question": "q", "response": "good"}] * 3
    first = score(client, items)
    again = score(client, items)
    assert len(engine.calls_of(RequestKind.score)) == 1
    assert [r["cached"] for r in first] == [False, True, True] and all(r["cached"] for r in again)
    assert {r["reward"] for r in first + again} == {2.25}


def test_a_pair_gives_both_scores_and_p_chosen(client, engine):
    [r] = score(client, [{"id": "p1", "question": "q", "chosen": "good", "rejected": "bad"}])
    assert r["id"] == "p1" and r["status"] == "ok"
    assert r["pair"] == {"chosen": 2.25, "rejected": -2.75, "chosen_status": "ok", "rejected_status": "ok"}
    assert r["score"] == 5.0 and r["reward"] == pytest.approx(1 / (1 + math.exp(-5.0)))


def test_a_pair_whose_half_is_refused_says_which_and_keeps_the_other_score(client):
    junk = "bad " * 200  # a repetition loop: the reward policy refuses it without the engine
    [plain, pair] = score(client, [{"question": "q", "response": "good"},
                                   {"question": "q", "chosen": "good", "rejected": junk}])
    assert plain["index"] == 0 and pair["index"] == 1
    assert pair["status"] == "degenerate" and pair["reward"] is None
    assert pair["pair"]["chosen"] == 2.25 and pair["pair"]["rejected"] is None
    assert pair["message"].startswith("the rejected response has no score: the response repeats itself")


def test_group_normalisation_is_grpos_mean_and_unbiased_std(client):
    responses = ["good", "good good", "bad", "good bad"]
    items = [{"question": "q1", "response": r} for r in responses] + [{"question": "q2", "response": "good"}]
    results = score(client, items, normalize="group")
    raw = [r["score"] for r in results[:4]]
    mean, std = statistics.mean(raw), statistics.stdev(raw)
    assert [r["reward"] for r in results[:4]] == pytest.approx([(x - mean) / (std + 1e-4) for x in raw])
    assert results[4]["reward"] == 0.0 and results[4]["score"] == 2.25  # alone in its group


def test_an_items_group_overrides_its_question(client):
    items = [{"question": f"q{i}", "response": r, "group": "g"} for i, r in enumerate(["good", "bad"])]
    a, b = score(client, items, normalize="group")
    assert a["reward"] == pytest.approx(-b["reward"]) and a["reward"] > 0.7


def test_a_refused_item_keeps_its_status_and_stays_out_of_its_group(client):
    items = [{"question": "q", "response": r} for r in ("good", "bad", "bad " * 200)]
    good, bad, junk = score(client, items, normalize="group")
    assert junk["status"] == "degenerate" and junk["reward"] is None
    assert good["reward"] == pytest.approx(-bad["reward"])


def test_pairs_stream_as_one_line_each(client):
    with client.stream("POST", "/score", json={"stream": True, "items": [
            {"question": "q", "chosen": "good", "rejected": "bad"}, {"question": "q", "response": "bad"}]}) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    results, done = lines[:-1], lines[-1]
    assert sorted(x["index"] for x in results) == [0, 1] and done["items"] == 2
    assert next(x for x in results if x["index"] == 0)["pair"]["rejected"] == -2.75


@pytest.mark.parametrize("body, field", [
    ({"samples": 2, "temperature": 0.7}, "samples"),
    ({"temperature": 0.5}, "temperature"),
    ({"top_p": 0.9}, "top_p"),
    ({"max_thinking_tokens": 10}, "max_thinking_tokens"),
    ({"return_reasoning": True}, "return_reasoning"),
    ({"direct_first": True}, "direct_first"),
    ({"verdict_prob": True}, "verdict_prob"),
    ({"mode": "hybrid"}, "mode"),
    ({"judge": "nano"}, "judge"),  # a generative profile on a scalar server
])
def test_what_a_scalar_model_does_not_do_is_a_422_naming_the_field(client, engine, body, field):
    r = client.post("/score", json={"items": [{"question": "q", "response": "good"}], **body})
    assert r.status_code == 422 and r.json()["error"]["param"] == field, r.text
    assert not engine.calls_of(RequestKind.score)


def test_normalize_with_stream_is_a_422(client):
    r = client.post("/score", json={"items": [{"question": "q", "response": "x"}], "stream": True,
                                    "normalize": "group"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "normalize"


@pytest.mark.parametrize("item", [{"question": "q"}, {"question": "q", "chosen": "a"},
                                  {"question": "q", "response": "r", "chosen": "a", "rejected": "b"}])
def test_an_item_is_a_response_or_a_whole_pair(client, item):
    r = client.post("/score", json={"items": [item]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "items.0.response"


def test_a_generative_server_refuses_scalar_profiles_pairs_and_groups(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    with make_client(engine) as c:
        item = {"question": "What is 2 + 2?", "response": "4"}
        for body, field in (({"judge": JUDGE}, "judge"), ({"normalize": "group"}, "normalize")):
            r = c.post("/score", json={"items": [item], **body})
            assert r.status_code == 422 and r.json()["error"]["param"] == field, r.text
        r = c.post("/score", json={"items": [{"question": "q", "chosen": "a", "rejected": "b"}]})
        assert r.status_code == 422 and r.json()["error"]["param"] == "items"
        assert "runs fake as a generative judge" in c.post("/score", json={"items": [item], "judge": JUDGE}
                                                           ).json()["error"]["message"]


def test_trainer_routes_pass_the_raw_score(client):
    r = client.post("/get_reward", json={"query": ["<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\ngood"],
                                         "prompts": ["<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"]})
    assert r.status_code == 200 and r.json()["rewards"] == [2.25], r.text
    r = client.post("/slime/reward/value", json={"prompt": [{"role": "user", "content": "q"}], "response": "bad"})
    assert r.status_code == 200 and r.json() == -2.75


def test_the_server_says_what_it_runs(client):
    assert client.get("/limits").json()["runner"] == "pooling"
    judges = {j["name"]: j for j in client.get("/judges").json()["judges"]}
    assert judges[JUDGE]["kind"] == "scalar" and judges["nano"]["kind"] == "generative"
    assert not judges[JUDGE]["thinking"]
    assert client.get("/ready").status_code == 200  # the readiness probe classifies on a pooling engine


def test_metrics_count_scalar_scores_apart_from_rewards(client):
    score(client, [{"question": "q", "response": "good good good good good good good good good good good"}])
    text = client.get("/metrics").text
    assert "libra_scalar_scores_total 1.0" in text
    assert 'libra_scalar_score_bucket{le="30.0"} 1.0' in text and 'libra_scalar_score_bucket{le="20.0"} 0.0' in text
    assert "libra_reward_count 0.0" in text


# -- profiles ---------------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rm.toml"
    path.write_text(text)
    return path


SCALAR = '''kind = "scalar"
origin = "ours: a test"
[[messages]]
role = "user"
content = "{question}"
[[messages]]
role = "assistant"
content = "{response}"
'''


def test_the_shipped_scalar_profile_is_skyworks_conversation():
    p = load_profile(JUDGE)
    assert p.scalar and p.messages == ({"role": "user", "content": "{question}"},
                                       {"role": "assistant", "content": "{response}"})
    assert p.origin.startswith("published: Skywork/Skywork-Reward-V2")


@pytest.mark.parametrize("extra, message", [
    ('verdict_pattern = "(x)"\n', "has no verdict: remove ['verdict_pattern']"),
    ('[sampling]\ntemperature = 0.5\n', "remove ['sampling']"),
    ('reference = "optional"\n', "remove ['reference']"),
])
def test_a_scalar_profile_with_verdict_fields_is_refused(tmp_path, extra, message):
    with pytest.raises(ProfileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        # top-level keys before the tables, a table after them
        parse_profile("rm", write(tmp_path, SCALAR + extra if extra.startswith("[") else extra + SCALAR))


def test_a_scalar_profile_ends_with_the_response(tmp_path):
    text = SCALAR + '[[messages]]\nrole = "user"\ncontent = "Rate it."\n'
    with pytest.raises(ProfileError, match="last message is the response"):
        parse_profile("rm", write(tmp_path, text))
    assert parse_profile("rm", write(tmp_path, SCALAR)).scalar


# -- the launch ------------------------------------------------------------------------------------------


def model_dir(tmp_path: Path, arch: str, labels: int = 1) -> Path:
    """A model directory with only a config.json (all the launch's check reads)."""
    out = tmp_path / arch
    out.mkdir()
    config = {"architectures": [arch], "model_type": "qwen3", "id2label": {str(i): f"L{i}" for i in range(labels)}}
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.mark.parametrize("arch, labels, judge, error", [
    ("Qwen3ForSequenceClassification", 1, JUDGE, None),
    ("InternLM2ForRewardModel", 1, JUDGE, None),
    ("Qwen3ForCausalLM", 1, "libra", None),
    ("Qwen3ForCausalLM", 1, JUDGE, "has no classification head, and judge 'skywork-reward-v2' is a scalar profile"),
    ("Qwen3ForSequenceClassification", 3, JUDGE, "has 3 labels"),
    ("LlamaForSequenceClassification", 1, "libra", "is a classifier (a scalar reward model) with no language-model"),
])
def test_the_launch_refuses_a_model_of_the_wrong_kind_in_one_line(tmp_path, arch, labels, judge, error):
    from service.launch import ModelKindError, check_model_kind, resolve

    spec = resolve(["--model", str(model_dir(tmp_path, arch, labels)), "--judge", judge])
    assert spec.args.runner == ("pooling" if judge == JUDGE else "auto")  # the service sets vLLM's runner
    if error is None:
        check_model_kind(spec)
        return
    with pytest.raises(ModelKindError, match=re.escape(error)) as caught:
        check_model_kind(spec)
    assert "\n" not in str(caught.value) and spec.args.model in str(caught.value)


def test_a_scalar_profile_with_runner_generate_is_refused(tmp_path):
    from service.launch import ModelKindError, check_model_kind, resolve

    spec = resolve(["--model", str(model_dir(tmp_path, "Qwen3ForSequenceClassification")), "--judge", JUDGE,
                    "--runner", "generate"])
    with pytest.raises(ModelKindError, match="needs vLLM's pooling runner"):
        check_model_kind(spec)
