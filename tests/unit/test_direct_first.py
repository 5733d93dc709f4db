"""Direct-first judging on the FakeEngine: a verdict without thinking stands where the judge is sure, the
thinking judgment decides the rest; bad options are 422s naming the field, never a silent fallback."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

from service.engine.fake import FakeEngine
from service.judge.cascade import why_no_direct
from service.judge.profiles import BUILTIN_DIR, ProfileError, load_profile, parse_profile
from service.judge.scorer import Scorer
from service.judge.types import ItemStatus, JudgeOptions, ScoreItem
from tests.helpers import make_client, perfect_nano_judge

DIRECT_OPEN = "<think>\n\n</think>"
EASY = ScoreItem("What is 12 + 5?", "12 + 5 = 17.")  # the fake judge is sure of a second operand below 50
HARD = ScoreItem("What is 347 + 58?", "347 + 58 = 415.")  # and unsure of one of 50 or more


def direct_profile(tmp_path, **cascade):
    """The nano profile, declared able to answer without thinking (Qwen3's empty thinking block)."""
    lines = [f'direct_open = "{DIRECT_OPEN.encode("unicode_escape").decode()}"']
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in cascade.items()]
    path = tmp_path / "nano.toml"
    path.write_text(nano_without_cascade() + "\n[cascade]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return parse_profile("nano", path)


def nano_without_cascade() -> str:
    return (BUILTIN_DIR / "nano.toml").read_text(encoding="utf-8").split("\n[cascade]")[0]  # (its last table)


def direct_reply(prompt: str, sample: int) -> str:
    """The nano judge's right verdict, thought through, or (after the empty thinking block) alone."""
    out = perfect_nano_judge(prompt, sample)
    return out.split("\\boxed{")[-1] if prompt.endswith("</think>\n\n\\boxed{") else out


def sureness(prompt: str) -> dict[str, float]:
    """The direct verdict's label distribution: 0.97 on the right label for an easy item, 0.6 for a hard one."""
    a, b, answer = (int(x) for x in re.search(r"What is (\d+) \+ (\d+)\?.*?= (\d+)", prompt, re.S).groups())
    p = 0.97 if b < 50 else 0.6
    right, wrong = ("c", "i") if a + b == answer else ("i", "c")
    return {right: math.log(p), wrong: math.log(1 - p)}


@pytest.fixture
def engine(nano_tokenizer):
    return FakeEngine(nano_tokenizer, direct_reply, max_model_len=1024, logprobs=sureness)


def kinds(engine) -> list[str]:
    return [rid.split("-")[1] for rid in engine.request_ids]


async def test_a_sure_direct_verdict_stands_and_an_unsure_one_is_thought_through(engine, tmp_path):
    opts = JudgeOptions.from_profile(direct_profile(tmp_path), direct_first=True)
    scorer = Scorer(engine, group_priming=False)
    easy, hard = await scorer.score([EASY, HARD], opts)
    assert (easy.judgment.judge_pass, easy.judgment.verdict, easy.judgment.reward) == ("direct", "correct", 1.0)
    assert easy.judgment.direct_prob == pytest.approx(0.97) and easy.judgment.verdict_prob == pytest.approx(0.97)
    assert easy.judgment.status == ItemStatus.ok and easy.judgment.usage.completion_tokens == 1  # "c" names it
    assert (hard.judgment.judge_pass, hard.judgment.verdict, hard.judgment.reward) == ("thinking", "incorrect", 0.0)
    assert hard.judgment.direct_prob == pytest.approx(0.6)
    thinking = len(engine.tokenizer.encode(perfect_nano_judge(engine.tokenizer.decode(engine.calls[-1]), 0),
                                           add_special_tokens=False))
    assert hard.judgment.usage.completion_tokens == 1 + thinking  # both passes
    assert sorted(kinds(engine)) == ["direct", "direct", "judge"]
    direct_prompt = engine.tokenizer.decode(engine.calls[kinds(engine).index("direct")])
    assert direct_prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n\\boxed{")
    assert engine.specs[0].choices == ("correct}", "incorrect}") and engine.specs[0].temperature == 0.0
    assert dict(scorer.stats.direct_first) == {"direct": 1, "thinking": 1}
    assert scorer.stats.direct_first_tokens["direct"] == 2
    assert engine.specs[0].max_tokens == 1  # the first token names the choice


@pytest.mark.parametrize("threshold, passes", [(0.6, ["direct", "direct"]), (0.9, ["direct", "thinking"]),
                                               (0.97, ["direct", "thinking"]), (1.0, ["thinking", "thinking"])])
async def test_the_threshold_decides_and_is_inclusive(engine, tmp_path, threshold, passes):
    opts = JudgeOptions.from_profile(direct_profile(tmp_path), direct_first=True, direct_threshold=threshold)
    results = await Scorer(engine, group_priming=False).score([EASY, HARD], opts)
    assert [r.judgment.judge_pass for r in results] == passes
    assert [r.judgment.verdict for r in results] == ["correct", "incorrect"]  # the right verdict either way


async def test_prob_rewards_samples_and_the_cache(engine, tmp_path):
    profile = direct_profile(tmp_path)
    scorer = Scorer(engine, group_priming=False)
    easy, hard = await scorer.score([EASY, HARD], JudgeOptions.from_profile(profile, direct_first=True,
                                                                             reward_mode="prob"))
    assert easy.judgment.reward == pytest.approx(0.97)  # the direct verdict's P(correct)
    # samples: a sure direct verdict stands for all k; an unsure item gets the k thinking samples.
    voted = await scorer.score([EASY, HARD], JudgeOptions.from_profile(profile, direct_first=True, samples=3))
    assert voted[0].judgment.votes == {"correct": 1} and voted[0].judgment.judge_pass == "direct"
    assert sum(voted[1].judgment.votes.values()) == 3 and voted[1].judgment.judge_pass == "thinking"
    calls = len(engine.calls)
    again = await scorer.score([EASY, HARD], JudgeOptions.from_profile(profile, direct_first=True,
                                                                        reward_mode="prob"))
    assert [r.cached for r in again] == [True, True] and len(engine.calls) == calls
    assert [r.judgment.judge_pass for r in again] == ["direct", "thinking"]
    other = JudgeOptions.from_profile(profile, direct_first=True, direct_threshold=0.5001)
    assert other.key_parts() != JudgeOptions.from_profile(profile, direct_first=True).key_parts()
    assert (JudgeOptions.from_profile(profile, direct_threshold=0.6).key_parts()
            == JudgeOptions.from_profile(profile, direct_threshold=0.7).key_parts())  # unread without direct_first


async def test_no_readable_probability_means_unsure(nano_tokenizer, tmp_path):
    engine = FakeEngine(nano_tokenizer, direct_reply, max_model_len=1024, logprobs=lambda _p: {"x": 0.0})
    [r] = await Scorer(engine, group_priming=False).score(
        [EASY], JudgeOptions.from_profile(direct_profile(tmp_path), direct_first=True))
    assert (r.judgment.judge_pass, r.judgment.direct_prob, r.judgment.verdict) == ("thinking", None, "correct")


async def test_a_direct_verdict_stands_only_as_the_label_it_is_sure_of(nano_tokenizer, tmp_path):
    """A choice whose label is not the one the probabilities favour (possible when labels are spelled with
    other first tokens) is not sure of itself: the thinking judgment decides."""
    engine = FakeEngine(nano_tokenizer, direct_reply, max_model_len=1024,
                        logprobs=lambda _p: {"i": math.log(0.95), "c": math.log(0.05)})
    [r] = await Scorer(engine, group_priming=False).score(
        [EASY], JudgeOptions.from_profile(direct_profile(tmp_path), direct_first=True))
    assert (r.judgment.judge_pass, r.judgment.verdict) == ("thinking", "correct")


def test_profiles_say_whether_their_judge_can_answer_directly(tmp_path):
    assert "declares no way to answer without thinking" in why_no_direct(load_profile("compass-verifier"))
    assert why_no_direct(direct_profile(tmp_path)) is None
    assert direct_profile(tmp_path, direct_first=True, direct_threshold=0.8).direct_threshold == 0.8
    text = nano_without_cascade()
    for section, message in (('direct_first = true', "direct_first: judge 'p' declares no way"),
                             ('direct_open = "x"\ndirect_threshold = 0.5', r"direct_threshold must be in \(0.5, 1\]"),
                             ('direct_threshold = 1.5', r"direct_threshold must be in \(0.5, 1\]"),
                             ('trust = "x"', r"unknown \[cascade\] field\(s\) \['trust'\]")):
        path = tmp_path / "p.toml"
        path.write_text(text + "\n[cascade]\n" + section + "\n", encoding="utf-8")
        with pytest.raises(ProfileError, match=message):
            parse_profile("p", path)


def test_direct_first_over_http(engine, tmp_path):
    direct_profile(tmp_path)  # writes tmp_path/nano.toml, found before the shipped one
    items = [{"question": EASY.question, "response": EASY.response}, {"question": HARD.question,
                                                                      "response": HARD.response}]
    with make_client(engine, judges_dir=tmp_path) as client:
        judges = {j["name"]: j for j in client.get("/judges").json()["judges"]}
        assert judges["nano"]["cascade"] == {"trust_rule": "correct", "direct_first": False, "direct_threshold": 0.9,
                                             "can_answer_directly": True}
        assert judges["compass-verifier"]["cascade"]["can_answer_directly"] is False
        results = client.post("/score", json={"items": items, "direct_first": True}).json()["results"]
        assert [(r["judge_pass"], r["verdict"]) for r in results] == [("direct", "correct"), ("thinking", "incorrect")]
        assert results[0]["direct_prob"] == pytest.approx(0.97)
        [plain] = client.post("/score", json={"items": items[:1], "cache": False}).json()["results"]
        assert (plain["judge_pass"], plain["direct_prob"]) == (None, None)
        text = client.get("/metrics").text
        assert 'libra_direct_first_items_total{judge_pass="direct"} 1.0' in text
        assert 'libra_direct_first_items_total{judge_pass="thinking"} 1.0' in text
        assert 'libra_direct_first_tokens_total{judge_pass="direct"} 2.0' in text  # one token each names the choice
        bad = [({"direct_first": True, "judge": "compass-verifier"}, "direct_first",
                "direct_first is not available: judge 'compass-verifier' declares no way to answer without thinking"),
               ({"direct_first": True, "direct_threshold": 0.5}, "direct_threshold", "greater than 0.5"),
               ({"direct_first": True, "direct_threshold": 1.01}, "direct_threshold", "less than or equal to 1"),
               ({"direct_threshold": 0.8}, "direct_threshold", "applies only with direct_first"),
               ({"direct_first": "yes"}, "direct_first", "boolean")]
        for body, param, message in bad:
            resp = client.post("/score", json={"items": items, **body})
            assert resp.status_code == 422, (body, resp.text)
            error = resp.json()["error"]
            assert error["param"] == param and message in error["message"], error
        assert client.post("/score", json={"items": items, "direct_first": True}).status_code == 200


def test_a_direct_verdict_is_one_token_where_the_choices_begin_apart_and_whole_otherwise(tmp_path):
    from service.judge.assets import ProfileAssets

    p = direct_profile(tmp_path)
    assert ProfileAssets.choice_by_first_char(p) == {"c": "correct}", "i": "incorrect}"}
    for choices in (["correct}", "correctly}"], ["A", "AB"]):
        assert ProfileAssets.choice_by_first_char(replace(p, force_choices=tuple(choices))) is None
