"""Hedged answers: a response that names more than one candidate final answer ("The answer is 405, or
possibly 406"). A judge that reads one of them (the nano judge reads the last number; an LLM judge may
accept a list that holds the reference) pays the hedge whenever one candidate is right, and a policy
under RL learns to name several. ``hedged_candidates`` finds them, before any engine work; the reward
policy's ``hedged`` field (policy.py) says what happens to them. docs/reward-hacking.md has the rule with
its measured false positives.

The rule. Only the answer part of the response is read (after its last ``</think>``: thinking may weigh
candidates). Candidates that are equal values count once (``405``, ``405.0``, ``\\boxed{405}``, ``x = 405``;
``1/2``, ``0.5``, ``50%``; a decimal and the exact value it rounds; ``12 inches`` and ``1 foot``: one value
in two units). The response is hedged when it names two or more different candidates

1. as its ``\\boxed{}`` answers: two different boxes, or one box holding alternatives (``405 \\text{ or } 406``);
2. in a final-answer statement ("the answer is", "our answer is", "final answer:", "answer:"; "the result
   is" and "the solution is" for their own alternatives only, as they may be intermediate): alternatives
   joined by "or" (with "either", "possibly", "maybe", ...), "one of 405, 406, 407", three or more
   numbers joined by ``/``; or across statements and boxes: "The answer is 405." ... "The answer is 406.";
3. as the whole of its last sentence, between numbers or math: "405 or 406.", "It is either 12 or 13."

An "or" counts between candidates only: short values (a number or math with at most two words after it,
its unit; or one to three words). Not hedges: alternatives that are all relations (``x = 2 or x = 3``,
``x < -1 or x > 1``: a solution set is one answer); working restated ("is $\\sqrt{100-49}$, or
$\\sqrt{51}$"); a restatement ("or about 3.14", "or equivalently ..."); "or more", "or less"; lists joined
by commas or "and" (``2, 3``, ``(1, 2)``, ``[1, 3]``); ``405/406`` (a fraction); an "or" inside working that
is neither a final-answer statement nor the last sentence; and every response to a question that asks for
several values ("find all", "solve", "possible values", "roots", parts (a) and (b)), where naming several
is the answer.

Limits: a hedge in those shapes passes (``x = 405 or x = 406``; "405, 406"; "405 and 406"; a question
that asks for roots); so does one spelled in words the rule does not read ("I'd go with 405, though 406
is close."). A solution set written as bare values joined by "or" ("5 or 9"), or two boxes for two asked
quantities, to a question the rule does not see as asking for several is refused; a response may write
the set as relations or in one box instead. Reads at most ``_SEGMENT_CHARS`` of a statement or box and the
last ``_STATEMENTS`` statements, so a 200,000-character response costs milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from service.judge.extract import boxed_spans

THINK_END = "</think>"
SHOWN_CHARS = 40  # a candidate longer than this is shown cut in the message
_PUNCTUATION = " \t\n.,;:!?"
_CLOSER = {"(": ")", "[": "]", "{": "}"}
_OPENER = {v: k for k, v in _CLOSER.items()}
_SEGMENT_CHARS = 300  # how much of a statement (or of a box) is read for candidates
_STATEMENTS = 32  # the final-answer statements read: the last ones (a response of 10,000 costs no more)

# Markers of a final-answer statement: their alternatives, and their single candidates across statements.
_MARKER = re.compile(r"(?:(?<![\w\\])(?:the|our|my)\s+(?:final\s+)?answer|(?<![\w\\])final\s+answer|"
                     r"(?:^|(?<=[\n.:!?*#]))[ \t*#]*answer)"
                     r"\s*(?:is|will\s+be|should\s+be|must\s+be|=|:)(?!\w)(?:\s*:)?", re.IGNORECASE)
# A marker that introduces a check of the answer, not the answer ("We may check our answer: ...").
_CHECKED = re.compile(r"(?:check|verify|confirm|test)\w*\s+$", re.IGNORECASE)
# Markers whose statements may be intermediate ("First ..., the result is 60."): their own alternatives only.
_WEAK_MARKER = re.compile(r"(?<![\w\\])(?:result|solution)\s*(?:is|:)(?!\w)(?:\s*:)?", re.IGNORECASE)
_OR = re.compile(r"\s*,?\s*(?:(?<![\w\\])(?:or|\\lor|\\vee)(?![a-zA-Z])|\((?=\s*(?:possibly|maybe|perhaps)\b))\s*",
                 re.IGNORECASE)
_OR_SENTENCE = re.compile(r"(?<=\S)[.!?]\s+(?=or\b)", re.IGNORECASE)  # "The answer is 405. Or maybe 406."
_ONE_OF = re.compile(r"(?:one|any|either)\s+of(?:\s+the\s+following|\s+these|\s+them)?\s*:?\s*", re.IGNORECASE)
_SLASHES = re.compile(r"\d+(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?){2,}")
_FILLER = re.compile(r"^(?:(?:either|possibly|maybe|perhaps|else|even|rather|alternatively|potentially|"
                     r"probably|likely|it's|it\s+is|it\s+may\s+be|it\s+might\s+be|could\s+be|might\s+be)\b[\s,]*)+",
                     re.IGNORECASE)
# An alternative that restates the one before it (or bounds it) names no new candidate.
_RESTATES = re.compile(r"^(?:about|approximately|approx\.?|roughly|around|nearly|almost|close\s+to|≈|\\approx|"
                       r"\\sim|~|equivalently|in\s+other\s+words|i\.e\.|that\s+is|simply|just|written|expressed|"
                       r"in\s+(?:decimal|fraction|percent)|as\s+a\s+(?:decimal|fraction|percent))", re.IGNORECASE)
# Where the first alternative's candidate starts: after the last of these ("It is either 405 or ...").
_LEAD_BOUNDARY = re.compile(r".*(?:(?<![\w\\])(?:is|are|was|were|be|equals|gives|get|gets|got|then|so|thus|hence|"
                            r"therefore|either|maybe|possibly|perhaps|probably|likely)(?!\w)|[:;])", re.IGNORECASE)
# Where a statement's clause ends ("405, because ...").
_CLAUSE_END = re.compile(r"\s*(?:[;]|,?\s+(?:because|since|which|so|but|if|when|where|as|depending|given|assuming|"
                         r"though|although|while|unless|whereas|hence|thus|therefore|respectively|and)(?!\w))",
                         re.IGNORECASE)
# What may open a last sentence that is nothing but candidates ("So it is either 12 or 13.").
_OPENER_WORDS = re.compile(r"^(?:(?:so|thus|hence|therefore|then|finally|well|we\s+get|this\s+gives|that\s+gives|"
                           r"i\s+think|i\s+guess|i\s+believe)\b[\s,]*)+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.?](?=\s|$)|(?<=[A-Za-z])!(?=\s|$)|\n")  # not 3! (a factorial)
_RELATION = re.compile(r"=|<|>|≤|≥|≠|≈|\\(?:le|ge|leq|geq|neq|ne|lt|gt|in|equiv|subset|subseteq|notin|pmod|approx)"
                       r"(?![a-zA-Z])")
_LAST_STEP = re.compile(r".*(?:=|≈|\\approx(?![a-zA-Z]))")  # "3! \times 5! = 720": its value is 720
# An operator between terms: an alternative holding one is a computation ("(900)^3/(15)^2"), not a candidate.
_OPERATION = re.compile(r"[\w)}\]!]\s*(?:[-+*×·÷]|\\(?:times|cdot|div|pm)(?![a-zA-Z]))\s*[\w(\\{]")
_PLAIN_WORD = re.compile(r"(?<![\\\w])[A-Za-z]{2,}")
_MATH = re.compile(r"[\d\\=<>^_π√∞]")
_CHOICE = re.compile(r"\(?[A-Ea-e]\)?")
_NOT_CANDIDATES = frozenset(
    "more less fewer greater higher lower larger smaller bigger above below better worse both neither not no so "
    "thereabouts otherwise later earlier equal since because which and but if when where as for the this that "
    "these those we it its they there here then thus hence therefore in on at by from to of with than also is "
    "are was be any some other another else similar similarly vice whatever whichever correct incorrect right "
    "wrong valid reasonable consistent".split())
# A question that asks for several values (or has parts): naming several is its answer.
_SEVERAL = re.compile(r"(?<!\w)(?:solve|find\s+all|all\s+(?:the\s+)?(?:possible\s+|real\s+|integer\s+|positive\s+|"
                      r"complex\s+|distinct\s+)*(?:values|solutions|roots|zeros|zeroes|numbers|integers|pairs|triples|"
                      r"functions|polynomials|points|primes)|possible\s+values?|one\s+possible|roots|solutions|"
                      r"zeros|zeroes|separated\s+by\s+commas|part\s*\(?[a-c1-3]\)|\((?:a|b|i|ii)\)[^()]*\((?:b|c|ii|iii)\))",
                      re.IGNORECASE)
_COUNTED = re.compile(r"(?:how\s+many|number\s+of|sum\s+of|product\s+of|average\s+of|mean\s+of)\s+(?:\w+\s+){0,3}$",
                      re.IGNORECASE)
_NUMBER = (r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+")
_VALUE = re.compile(rf"(?P<sign>[-+]?)\s*(?:(?P<whole>\d+)\s*\\frac\{{(?P<mn>\d+)\}}\{{(?P<md>\d+)\}}|"
                    rf"\\frac\{{(?P<fn>{_NUMBER})\}}\{{(?P<fd>{_NUMBER})\}}|(?P<n>{_NUMBER})(?:\s*/\s*(?P<d>{_NUMBER}))?)"
                    r"\s*(?P<pct>%)?")
_UNIT = re.compile(r"[A-Za-z][A-Za-z .]*")
_VARIABLE = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?P<rhs>[^=]+)$")


def several_asked(question: str) -> bool:
    """Whether the question asks for more than one value (or has parts), so that several are its answer."""
    return any(not _COUNTED.search(question[max(0, m.start() - 60):m.start()]) for m in _SEVERAL.finditer(question))


def hedged_candidates(response: str, question: str = "") -> tuple[str, ...] | None:
    """The different candidate final answers a hedged response names (two or more), or None."""
    if several_asked(question):
        return None
    text = _OR_SENTENCE.sub(", ", response.rpartition(THINK_END)[2] if THINK_END in response else response)
    named: list[str] = []  # the single candidates of boxes and final-answer statements
    boxes = boxed_spans(text)
    for i, (start, end) in enumerate(boxes):
        if i + 1 < len(boxes) and boxes[i + 1][0] < end:  # a box around a box: the inner one is the answer
            continue
        if end - start > _SEGMENT_CHARS:  # a long box is one answer, not a list of short candidates
            named.append(text[start:end])
            continue
        alternatives = _alternatives(text[start:end])
        if len(alternatives) > 1:
            return _hedge(alternatives)
        named.append(_tidy(_plain(text[start:end])))
    for marker, counts in ((_MARKER, True), (_WEAK_MARKER, False)):
        for m in list(marker.finditer(text))[-_STATEMENTS:]:
            if _CHECKED.search(text[max(0, m.start() - 30):m.start()]):
                continue
            statement = _statement(text, m.end())
            alternatives = _alternatives(statement)
            if len(alternatives) > 1:
                return _hedge(alternatives)
            # A statement's one candidate counts across statements when it is a value: its box counts
            # already, and a computation ("3! \times 5! = 720") or assignments ("a = 5, b = 6") are not one.
            if (counts and alternatives and "\\boxed" not in statement and _is_value(alternatives[0])
                    and not _computation(alternatives[0])):
                named.append(alternatives[0])
    if (found := _hedge(named)) is not None:
        return found
    last = _last_sentence(text)
    if _OR.search(last) and not _MARKER.search(last):
        return _hedge(_alternatives(_FILLER.sub("", _OPENER_WORDS.sub("", last)), math_only=True, whole=True))
    return None


def _computation(candidate: str) -> bool:
    """Whether the candidate is a computation rather than a value: an operator between terms that is
    not part of a number (``-5``, ``1/2``, ``1,000``) the candidate reads as."""
    variable = _VARIABLE.match(candidate)
    rest = variable.group("rhs").strip() if variable else candidate
    return _key(rest).value is None and bool(_OPERATION.search(rest))


def _is_value(candidate: str) -> bool:
    variable = _VARIABLE.match(candidate)
    rest = variable.group("rhs") if variable else candidate
    return not _RELATION.search(rest) and len(_top_level_split(rest)) == 1


def _hedge(candidates: list[str]) -> tuple[str, ...] | None:
    distinct: list[tuple[str, _Key]] = []
    for c in candidates:
        key = _key(c)
        if c and not any(key.same(k) for _, k in distinct):
            distinct.append((c, key))
    return tuple(c for c, _ in distinct) if len(distinct) > 1 else None


def shown(candidates: tuple[str, ...]) -> str:
    """The candidates as the message names them: quoted, each cut to ``SHOWN_CHARS``."""
    return ", ".join('"' + (c if len(c) <= SHOWN_CHARS else c[:SHOWN_CHARS - 3] + "...") + '"' for c in candidates)


# -- reading a statement --------------------------------------------------------------------------------


def _statement(text: str, start: int) -> str:
    """The text of the final-answer statement whose marker ends at ``start``: to the end of its sentence
    (a display-math block on the next line whole), cut where the next marker begins."""
    i = start
    while i < len(text) and text[i].isspace():
        i += 1
    for opening, closing in (("\\[", "\\]"), ("$$", "$$")):
        if text.startswith(opening, i):
            end = text.find(closing, i + len(opening))
            return text[i:end if 0 <= end < i + _SEGMENT_CHARS else i + _SEGMENT_CHARS]
    window = text[i:i + _SEGMENT_CHARS]
    end = _SENTENCE_END.search(window)
    window = window[:end.start()] if end else window
    again = _MARKER.search(window)
    return window[:again.start()] if again else window


def _last_sentence(text: str) -> str:
    lines = [line for line in text[-600:].splitlines() if line.strip()]
    if not lines:
        return ""
    return re.split(r"(?<=[.!?])\s+", lines[-1].strip().rstrip(".!?").strip())[-1]


def _plain(segment: str) -> str:
    """The segment with the LaTeX and markdown that do not change its value dropped."""
    s = re.sub(r"\\[hv]?phantom\s*\{[^{}]*\}", "", segment)
    for _ in range(2):
        s = re.sub(r"\\(?:text|textrm|textit|textbf|textnormal|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}",
                   r" \1 ", s)
    s = re.sub(r"\\(?:boxed|fbox|displaystyle|left|right|big|Big|bigl|bigr)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[dt]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\\[,;:! ]|\\q?quad(?![a-zA-Z])|~", " ", s)
    for token in ("$", "\\(", "\\)", "\\[", "\\]", "**"):
        s = s.replace(token, " ")
    return " ".join(s.replace("−", "-").split())


def _alternatives(segment: str, math_only: bool = False, whole: bool = False) -> list[str]:
    """The candidates a final-answer segment names: one, several (a disjunction or a "one of" list), or
    none when it is no candidate. A disjunction of relations is one candidate (a solution set). ``whole``:
    the segment must be nothing but its candidates (no words before the first)."""
    s = _plain(segment)
    listed = _ONE_OF.match(s)
    if listed:
        items = [_tidy(x) for x in re.split(r",\s+|\s+(?:or|and)\s+", _cut(s[listed.end():])) if x.strip()]
        return items if items and all(_candidate(x, math_only) for x in items) else []
    if _SLASHES.fullmatch(_tidy(s)):
        return [x.strip() for x in _tidy(s).split("/")]
    parts = _OR.split(s)
    if len(parts) == 1:
        single = _tidy(_cut(s))
        return [single] if _candidate(single, math_only) else []
    alternatives = _leading(parts[0], math_only, whole)
    if not alternatives:
        return []
    for part in parts[1:]:
        part = _FILLER.sub("", part)
        if _RESTATES.match(part):
            break
        cut = _cut(part)
        alternatives.append(_tidy(cut))
        if cut != part:  # the clause ended: what follows is not an alternative
            break
    if not all(_candidate(a, math_only) for a in alternatives):
        return []
    if len(alternatives) > 1 and all(_RELATION.search(a) for a in alternatives):
        return [" or ".join(alternatives)]
    if len(alternatives) > 1 and not all(_is_value(a) and not _computation(a) for a in alternatives):
        return []  # "\sqrt{DF^2 - EF^2}, or \sqrt{51}": working restated, not candidates
    return alternatives


def _leading(text: str, math_only: bool, whole: bool = False) -> list[str]:
    """The candidates at the end of the text before the first "or" ("405, 406" of "405, 406 or 407");
    ``whole``: the text must be nothing but candidates."""
    out: list[str] = []
    items = _top_level_split(text)
    if whole:
        items = [_tidy(x) for x in items]
        return items if all(_candidate(x, math_only) for x in items) else []
    for item in reversed(items):
        boundary = _LEAD_BOUNDARY.match(item)
        candidate = _tidy(_FILLER.sub("", item[boundary.end():] if boundary else item))
        if not _candidate(candidate, math_only):
            break
        out.append(candidate)
        if boundary:
            break
    return out[::-1]


def _top_level_split(text: str) -> list[str]:
    """``text`` split at ", " outside brackets (``(1, 2)`` and ``1,000`` stay whole)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "([{") - (ch in ")]}")
        if ch == "," and depth <= 0 and text[i + 1:i + 2].isspace():
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _cut(text: str) -> str:
    end = _CLAUSE_END.search(text)
    return text[:end.start()] if end else text


def _tidy(candidate: str) -> str:
    """The candidate without surrounding punctuation, unbalanced brackets or a wrapping brace group."""
    c = candidate.strip(_PUNCTUATION)
    while c:
        if c[-1] in "([{" or c[0] in ")]}":
            c = c[:-1] if c[-1] in "([{" else c[1:]
        elif c[0] in "([{" and c.count(c[0]) > c.count(_CLOSER[c[0]]):
            c = c[1:]
        elif c[-1] in ")]}" and c.count(c[-1]) > c.count(_OPENER[c[-1]]):
            c = c[:-1]
        elif c[0] == "{" and c[-1] == "}" and _balanced(c[1:-1]):
            c = c[1:-1]
        else:
            break
        c = c.strip(_PUNCTUATION)
    return c


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def _candidate(c: str, math_only: bool = False) -> bool:
    """Whether ``c`` looks like a final answer: a number or math, with at most two words after it (its
    unit), or (unless ``math_only``) one to three words or a choice letter."""
    if not c or len(c) > 60:
        return False
    words = _PLAIN_WORD.findall(c)
    if words and words[0].lower() in _NOT_CANDIDATES:
        return False
    math = _MATH.search(c)
    if math:
        return len(words) <= 2 and not _PLAIN_WORD.search(c, 0, math.start())
    return not math_only and (1 <= len(words) <= 3 or bool(_CHOICE.fullmatch(c)))


# -- comparing candidates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    value: Fraction | None  # the candidate's number, when it is one (with an optional unit)
    places: int | None  # decimal places of a decimal number: it equals what rounds to it
    unit: str
    text: str

    def same(self, other: _Key) -> bool:
        if self.value is not None and other.value is not None:
            if self._rounds(other) or other._rounds(self):
                return True
            return bool(self.unit and other.unit and self.unit != other.unit)  # one value, two units
        return self.text == other.text

    def _rounds(self, other: _Key) -> bool:
        assert self.value is not None and other.value is not None
        return self.value == other.value or (self.places is not None and round(other.value, self.places) == self.value)


def _key(candidate: str) -> _Key:
    s = candidate.strip()
    if len(s) > _SEGMENT_CHARS:  # a long box: compared as text (and no 100,000-digit number is parsed)
        return _Key(None, None, "", "".join(s.split()))
    variable = _VARIABLE.match(s)
    if variable:
        s = variable.group("rhs").strip()
    step = _LAST_STEP.match(s)
    if step and step.end() < len(s) and "," not in s and " or " not in s:
        s = s[step.end():].strip()
    s = re.sub(r"\^\s*\{?\\circ\}?|°|\\degree", "", s).replace("\\%", "%").strip()
    while len(s) > 2 and s[0] + s[-1] in ("()", "{}") and "," not in s:
        s = s[1:-1].strip()
    text = re.sub(r"[\s{}]", "", s).lower().rstrip(".")
    m = _VALUE.match(s)
    unit = s[m.end():].strip() if m else ""
    if not m or (unit and not _UNIT.fullmatch(unit)):
        return _Key(None, None, "", text)
    sign = -1 if m.group("sign") == "-" else 1
    places = None
    if m.group("whole") is not None:
        value = int(m.group("whole")) + Fraction(int(m.group("mn")), int(m.group("md")))
    elif m.group("fn") is not None:
        value = _number(m.group("fn")) / _number(m.group("fd")) if _number(m.group("fd")) else None
    else:
        value = _number(m.group("n"))
        if m.group("d") is not None:
            value = value / _number(m.group("d")) if _number(m.group("d")) else None
        elif "." in m.group("n"):
            places = len(m.group("n").rpartition(".")[2])
    if value is None:
        return _Key(None, None, "", text)
    if m.group("pct"):
        value, places = value / 100, None if places is None else places + 2
    return _Key(sign * value, places, unit.lower().rstrip(". "), text)


def _number(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))
