"""Judge profiles: how to prompt a judge model and read its verdict. Profiles are data (TOML files).

A profile file ``<name>.toml`` lives in ``service/judges/`` (shipped) or in a directory named by the
user (``--judges-dir`` / ``LIBRA_JUDGES_DIR``, searched first); adding a judge adds a file, not a branch
in the code. Fields (see the shipped files for examples):

- ``description``; ``reference``: ``required`` | ``optional`` | ``unused``.
- ``messages`` (chat, rendered with the model's chat template) or ``prompt`` with
  ``chat_template = false`` (raw text). Placeholders: ``{question}``, ``{response}``, ``{reference}``,
  and ``{reference_block}``, which expands to ``[reference_block].present`` or ``.absent``.
- ``think_end``: the end-of-thinking marker ("" for judges that do not think); the verdict is parsed
  only after it.
- ``origin``: where the prompt and verdict format come from: ``published: <repository, path, commit>``
  (reproduced verbatim, for a model trained on it) or ``ours: <why>`` (our own design). ``GET /judges``
  shows it.
- ``verdict_pattern``: a regex whose first group is the verdict label (case-insensitive; the last match
  after the thinking wins).
- ``[rewards]``: label -> reward. A label without a reward is not a verdict. Or, for a judge that gives
  a number, ``[score]`` with ``min`` and ``max``: the captured number is the verdict and its reward is
  ``(score - min) / (max - min)``; a number outside the range is not a verdict.
- ``[sampling]``: defaults for ``temperature``, ``top_p``, ``max_tokens``, ``samples`` and
  ``max_thinking_tokens`` (the thinking budget; past it the verdict is forced).
- ``[force]``: ``prefix`` appended after the end marker and ``choices`` the engine may continue with
  when forcing a verdict; each ``think_end + prefix + choice`` must parse to a label with a reward.
- ``[input] truncate``: ``none`` (too-long items get status ``too_long``) or ``head`` | ``tail`` |
  ``middle`` (which part of the response to keep... ``head`` keeps the start, ``tail`` the end,
  ``middle`` drops the middle).
- ``[input] response``: what of the response the judge is shown (``service/judge/extract.py``):
  ``full`` (default), ``final_answer`` (the last ``\\boxed{...}``, else the last ``Final Answer:``-style
  line) or ``last_line`` (the last non-empty line). A response with nothing to show gets status
  ``no_answer`` without an engine call, and the reward ``[input] no_answer_reward`` (default: none).
- ``[policy]``: the reward policy (``service/judge/policy.py``): ``answer`` (the answer-presence
  check), ``hedged`` (hedged answers, where that check is on), ``max_repetition``, ``truncated`` and
  ``forced``; a request may override each.
- ``[cascade] trust_rule``: in ``mode: hybrid``, which of math-verify's verdicts stand without the
  judge: ``correct`` (default: only an accepted answer) or ``conclusive`` (a rejection too);
  ``service/judge/cascade.py`` says why. A request may override it.
- ``[cascade] direct_open``: the text with which the judge's model answers without thinking, right
  after the generation prompt (Qwen3's ``enable_thinking: false``: ``<think>\n\n</think>``); absent,
  the judge cannot be asked for a direct verdict. ``direct_first`` (default false) asks for one first
  and thinks only where its best label's probability is below ``direct_threshold`` (default 0.9, in
  (0.5, 1]); a request may override both.
- ``kind``: ``generative`` (default: a judge that writes a verdict, everything above) or ``scalar``: a
  Bradley-Terry reward model, a sequence classifier with one label that reads the conversation and gives
  one number (Skywork-Reward-V2 and kin). A scalar profile has ``messages`` (the conversation as the model
  card prescribes: the question as the user's turn, the response as the assistant's, rendered with the
  model's chat template without a generation prompt) or a raw ``prompt``, ``origin``, ``description``,
  ``[input]`` and ``[policy]``, and nothing of a verdict (no ``verdict_pattern``, ``[rewards]``,
  ``[score]``, ``[force]``, ``[sampling]``, ``[cascade]``, ``think_end``, reference); its reward is the
  model's raw score. A server runs the engine of its default judge's kind (a scalar one on vLLM's
  pooling runner) and refuses requests for a profile of the other kind.
- ``[rubric]``: a judge of rubric criteria (``service/judge/rubric.py``): ``strategy`` ``per_criterion`` (the
  prompt's ``{criterion}`` is one criterion; one judgment each) or ``holistic`` (``{criterion}`` is the whole
  list; one rating); ``per_criterion`` / ``holistic`` name the profile a request's ``rubric_strategy`` switches
  to. Only a rubric profile may use ``{criterion}``, and it must; it alone may leave ``{question}`` out, its
  criteria carrying what is checked (``nano-rubric``).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path

from service.judge.cascade import TRUST_RULE, direct_threshold_error, why_no_direct
from service.judge.policy import RewardPolicy
from service.judge.verdict import parse_verdict

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "judges"
REFERENCE_MODES = ("required", "optional", "unused")
TRUNCATE_MODES = ("none", "head", "tail", "middle")
RESPONSE_INPUTS = ("full", "final_answer", "last_line")
KINDS = ("generative", "scalar")
RUBRIC_STRATEGIES = ("per_criterion", "holistic")
# What a scalar profile may hold (everything else describes a verdict it never gives).
_SCALAR_FIELDS = {"kind", "description", "origin", "messages", "prompt", "chat_template", "input", "policy"}
# Fields that say where a profile came from or what it is called, not how it prompts or reads a verdict;
# left out of its content hash, so the same judge loaded from another directory hashes the same.
_NOT_CONTENT = ("name", "source", "description", "origin")


class ProfileError(ValueError):
    """A profile file is missing or malformed."""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    verdict_pattern: str
    rewards: dict[str, float]
    messages: tuple[dict[str, str], ...] = ()
    prompt: str | None = None  # raw prompt when the profile does not use the chat template
    think_end: str | None = "</think>"
    reference: str = "unused"
    reference_block: dict[str, str] = field(default_factory=dict)
    sampling: dict[str, float | int] = field(default_factory=dict)
    force_prefix: str | None = None
    force_choices: tuple[str, ...] = ()
    truncate: str = "none"
    source: str = ""  # the file it was loaded from
    origin: str = ""
    score_range: tuple[float, float] | None = None  # a numeric judge's [min, max]; rewards are then unused
    response_input: str = "full"
    no_answer_reward: float | None = None
    policy: RewardPolicy = field(default_factory=RewardPolicy)
    trust_rule: str = "correct"  # [cascade]: which rule verdicts stand without the judge in mode hybrid
    direct_open: str | None = None  # [cascade]: how the model answers without thinking (None: it cannot)
    direct_first: bool = False  # [cascade]: a direct verdict first, thinking only where it is unsure
    direct_threshold: float = 0.9  # [cascade]: the best label's probability at which a direct verdict stands
    kind: str = "generative"  # KINDS: a judge that writes a verdict, or a scalar reward model's one number
    rubric_strategy: str | None = None  # [rubric] strategy: per_criterion | holistic (None: not a rubric judge)
    rubric_partners: dict[str, str] = field(default_factory=dict)  # [rubric]: strategy -> the profile for it

    @property
    def scalar(self) -> bool:
        return self.kind == "scalar"

    @property
    def key(self) -> str:
        """What tells this profile apart in the cache key and the per-profile caches: the file it came
        from (two directories may each hold a ``nano.toml``), else its name (a profile built in code)."""
        return self.source or self.name

    @cached_property
    def content_sha256(self) -> str:
        """sha256 (hex) of what decides this profile's prompts, parsing and rewards, for tying a run's
        rewards to the exact prompt (``GET /version``).

        Hashed: a canonical JSON dump of the loaded fields (sorted keys, tuples as lists), all but
        ``_NOT_CONTENT``. Why the loaded fields rather than the TOML file's bytes: they are what the
        scorer runs, so the hash also moves when a default the parser fills in changes between releases
        (``think_end``, the reward policy), and it stays put under a comment or whitespace edit or a
        copy in another directory; a profile built in code, with no file, has one too."""
        content = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_CONTENT}
        content["policy"] = asdict(self.policy)
        text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def shows_reference(self) -> bool:
        """Whether the judge is shown an item's reference when the item has one (``required`` and
        ``optional``); the one place prompt rendering and the judgment key decide it."""
        return self.reference != "unused"

    @property
    def can_force(self) -> bool:
        return bool(self.force_choices)

    def reward_for(self, label: str | None) -> float | None:
        if label is None:
            return None
        if self.score_range is None:
            return self.rewards.get(label)
        low, high = self.score_range
        try:
            value = float(label)
        except ValueError:
            return None
        return (value - low) / (high - low) if low <= value <= high else None

    def label_of(self, label: str) -> str:
        """The canonical form of a verdict label (a numeric score's ``8.0`` and ``8`` are one vote)."""
        return f"{float(label):g}" if self.score_range is not None else label

    def messages_for(self, has_reference: bool) -> tuple[dict[str, str], ...]:
        """The chat messages, with ``{reference_block}`` expanded for this item."""
        block = self.reference_block.get("present" if has_reference else "absent", "")
        return tuple({"role": m["role"], "content": m["content"].replace("{reference_block}", block)}
                     for m in self.messages)

    def prompt_for(self, has_reference: bool) -> str | None:
        if self.prompt is None:
            return None
        return self.prompt.replace("{reference_block}",
                                   self.reference_block.get("present" if has_reference else "absent", ""))

    def describe(self) -> dict:
        """What ``GET /judges`` shows for this profile."""
        return {
            "name": self.name,
            "kind": self.kind,
            "rubric": None if self.rubric_strategy is None else {"strategy": self.rubric_strategy,
                                                                 **self.rubric_partners},
            "description": self.description,
            "reference": self.reference,
            "origin": self.origin,
            "labels": {label: reward for label, reward in self.rewards.items()},
            "score": None if self.score_range is None else dict(zip(("min", "max"), self.score_range, strict=True)),
            "thinking": bool(self.think_end) and not self.scalar,
            "can_force_verdict": self.can_force,
            "truncate": self.truncate,
            "response_input": self.response_input,
            "policy": self.policy.describe(),
            "sampling": dict(self.sampling),
            "cascade": {"trust_rule": self.trust_rule, "direct_first": self.direct_first,
                        "direct_threshold": self.direct_threshold, "can_answer_directly": why_no_direct(self) is None},
        }


def load_profile(name: str, extra_dirs: tuple[Path, ...] = ()) -> Profile:
    """Load profile ``name``; user directories are searched before the shipped profiles."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ProfileError(f"invalid judge profile name {name!r}")
    for directory in (*extra_dirs, BUILTIN_DIR):
        path = Path(directory) / f"{name}.toml"
        if path.is_file():
            return parse_profile(name, path)
    raise ProfileError(f"unknown judge profile {name!r}; known: {', '.join(list_profiles(extra_dirs))}")


def list_profiles(extra_dirs: tuple[Path, ...] = ()) -> list[str]:
    names = {p.stem for d in (*extra_dirs, BUILTIN_DIR) if Path(d).is_dir() for p in Path(d).glob("*.toml")}
    return sorted(names)


def load_all(extra_dirs: tuple[Path, ...] = ()) -> dict[str, Profile]:
    return {name: load_profile(name, extra_dirs) for name in list_profiles(extra_dirs)}


def parse_profile(name: str, path: Path) -> Profile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"judge profile {path}: {exc}") from exc
    try:
        kind = data.get("kind", "generative")
        if kind not in KINDS:
            raise ProfileError(f"kind must be one of {KINDS}, not {kind!r}")
        if kind == "scalar" and (extra := sorted(set(data) - _SCALAR_FIELDS)):
            raise ProfileError(f"a scalar profile (a reward model's one number) has no verdict: remove {extra} "
                               f"(it may hold {sorted(_SCALAR_FIELDS)})")
        use_chat = data.get("chat_template", True)
        messages = tuple({"role": m["role"], "content": m["content"]} for m in data.get("messages", ()))
        prompt = data.get("prompt")
        if use_chat and not messages:
            raise ProfileError("a chat profile needs [[messages]]")
        if not use_chat and not prompt:
            raise ProfileError("a profile with chat_template = false needs prompt")
        force = data.get("force", {})
        score = data.get("score")
        inputs = data.get("input", {})
        cascade = data.get("cascade", {})
        rubric = dict(data.get("rubric", {}))
        if set(rubric) - {"strategy", *RUBRIC_STRATEGIES}:
            raise ProfileError(f"judge profile {path}: unknown [rubric] field(s) "
                               f"{sorted(set(rubric) - {'strategy', *RUBRIC_STRATEGIES})}")
        unknown = set(cascade) - {"trust_rule", "direct_open", "direct_first", "direct_threshold"}
        if unknown:
            raise ProfileError(f"judge profile {path}: unknown [cascade] field(s) {sorted(unknown)}")
        profile = Profile(
            name=name,
            description=data.get("description", ""),
            verdict_pattern=data["verdict_pattern"] if kind != "scalar" else "",
            rewards={str(k).lower(): float(v) for k, v in data.get("rewards", {}).items()},
            messages=messages if use_chat else (),
            prompt=None if use_chat else prompt,
            think_end=(data.get("think_end", "</think>") or None) if kind != "scalar" else None,
            reference=data.get("reference", "unused"),
            reference_block=dict(data.get("reference_block", {})),
            sampling=dict(data.get("sampling", {})),
            force_prefix=force.get("prefix", ""),
            force_choices=tuple(force.get("choices", ())),
            truncate=inputs.get("truncate", "none"),
            source=str(path),
            origin=str(data.get("origin", "")),
            score_range=None if score is None else (float(score["min"]), float(score["max"])),
            response_input=inputs.get("response", "full"),
            no_answer_reward=None if inputs.get("no_answer_reward") is None else float(inputs["no_answer_reward"]),
            policy=RewardPolicy.parse(dict(data.get("policy", {}))),
            trust_rule=str(cascade.get("trust_rule", "correct")),
            direct_open=cascade.get("direct_open"),
            direct_first=bool(cascade.get("direct_first", False)),
            direct_threshold=float(cascade.get("direct_threshold", 0.9)),
            kind=kind,
            rubric_strategy=rubric.get("strategy"),
            rubric_partners={k: str(v) for k, v in rubric.items() if k in RUBRIC_STRATEGIES},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProfileError(f"judge profile {path}: {exc}") from exc
    _validate(profile, path)
    return profile


def _validate(p: Profile, path: Path) -> None:
    def fail(msg: str) -> None:
        raise ProfileError(f"judge profile {path}: {msg}")

    if p.scalar:
        _validate_scalar(p, fail)
        return
    if p.reference not in REFERENCE_MODES:
        fail(f"reference must be one of {REFERENCE_MODES}, not {p.reference!r}")
    if p.truncate not in TRUNCATE_MODES:
        fail(f"[input] truncate must be one of {TRUNCATE_MODES}, not {p.truncate!r}")
    if p.response_input not in RESPONSE_INPUTS:
        fail(f"[input] response must be one of {RESPONSE_INPUTS}, not {p.response_input!r}")
    if p.trust_rule not in TRUST_RULE:
        fail(f"[cascade] trust_rule must be one of {TRUST_RULE}, not {p.trust_rule!r}")
    if why := direct_threshold_error(p.direct_threshold):
        fail(f"[cascade] direct_threshold {why}")
    if p.direct_first and (why := why_no_direct(p)):
        fail(f"[cascade] direct_first: {why}")
    if not p.origin.startswith(("published:", "ours:")):
        fail("origin must say 'published: <repository, path, commit>' or 'ours: <why>'")
    if bool(p.rewards) == (p.score_range is not None):
        fail("give either [rewards] (labels) or [score] (min, max), not both or neither")
    if p.score_range is not None and not p.score_range[0] < p.score_range[1]:
        fail("[score] min must be below max")
    try:
        compiled = re.compile(p.verdict_pattern)
    except re.error as exc:
        fail(f"verdict_pattern does not compile: {exc}")
    if compiled.groups < 1:
        fail("verdict_pattern needs a capturing group for the label")
    text = "".join(m["content"] for m in p.messages) + (p.prompt or "")
    # A rubric judge may leave the question out: its criteria can carry what is checked (nano-rubric).
    for needed in ("{response}",) if p.rubric_strategy is not None else ("{question}", "{response}"):
        if needed not in text:
            fail(f"the prompt never uses {needed}")
    if p.rubric_strategy is not None and p.rubric_strategy not in RUBRIC_STRATEGIES:
        fail(f"[rubric] strategy must be one of {RUBRIC_STRATEGIES}, not {p.rubric_strategy!r}")
    if (p.rubric_strategy is not None) != ("{criterion}" in text):
        fail("a rubric judge ([rubric] strategy) shows {criterion} in its prompt, and only a rubric judge does")
    if p.reference == "unused" and "{reference" in text:
        fail("reference is 'unused' but the prompt shows it")
    for choice in p.force_choices:
        label = parse_verdict((p.think_end or "") + (p.force_prefix or "") + choice, p.think_end,
                              p.verdict_pattern).label
        if p.reward_for(label) is None:
            fail(f"forced choice {choice!r} does not parse to a label with a reward")


def _validate_scalar(p: Profile, fail) -> None:
    """A scalar profile: a prompt with the question and the response, where it came from, its input and
    policy; nothing of a verdict (parse_profile refused those fields)."""
    if p.truncate not in TRUNCATE_MODES:
        fail(f"[input] truncate must be one of {TRUNCATE_MODES}, not {p.truncate!r}")
    if p.response_input not in RESPONSE_INPUTS:
        fail(f"[input] response must be one of {RESPONSE_INPUTS}, not {p.response_input!r}")
    if not p.origin.startswith(("published:", "ours:")):
        fail("origin must say 'published: <repository, path, commit>' or 'ours: <why>'")
    text = "".join(m["content"] for m in p.messages) + (p.prompt or "")
    for needed in ("{question}", "{response}"):
        if needed not in text:
            fail(f"the prompt never uses {needed}")
    if "{reference" in text or "{criterion}" in text:
        fail("a scalar reward model is never shown a reference or a rubric")
    if p.messages and p.messages[-1]["content"].strip() != "{response}":
        fail("a scalar profile's last message is the response being scored ('{response}'), as a reward model "
             "reads the conversation up to the end of the response")
