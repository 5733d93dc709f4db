"""Each production profile renders its source's prompt exactly: the published template (copied here as a
fact, with its source) filled with the same values as the profile, compared character for character.
And the verdict formats read as their sources read them."""

from __future__ import annotations

import pytest

from service.judge.extract import final_answer, last_line
from service.judge.profiles import load_profile
from service.judge.prompts import PromptRenderer
from service.judge.verdict import parse_verdict

# IAAR-Shanghai/xVerify, src/xVerify/prompts/judge_prompt.py, PROMPT @ 5e3606ac82dfacde5120bbf6db295979bad10e1a
XVERIFY = (
    'You are a diligent and precise assistant tasked with evaluating the correctness of responses. You wi'
    'll receive a question, an output sentence, and the correct answer. Your task is to determine if the '
    'output sentence accurately answers the question based on the provided correct answer. Respond with e'
    'ither [Correct] or [Incorrect].\n-\nSpecial considerations:\n\n1. **Multiple Answers**: If the outpu'
    't contains multiple answers, evaluate whether later answers modify or correct earlier ones. In such '
    'cases, compare the final answer with the correct answer. If the final answer is unclear or incorrect'
    ', respond with [Incorrect].\n\n2. **Mathematical Problems**: If the formats differ but the answers a'
    're mathematically equivalent, respond with [Correct].\n\n3. **Explicit Options**: If the question pr'
    'ovides explicit candidate answers, the output will be considered correct if it clearly indicates the'
    ' correct option\'s code or the correct option\'s content.\n\n4. **No Explicit Options**: If the ques'
    'tion does not provide explicit options, the output must align with the correct answer in content and'
    ' meaning to be considered [Correct].\n-\n\nQuestion: """{question}"""\n\nOutput sentence: """{output'
    '}"""\n\nCorrect answer: {answer}\n\nJudgement:\n'
)

# TIGER-AI-Lab/General-Reasoner, verifier.py @ 007e44cb1e6a624845616dd5c1c7e044e5bfd3cd
GENERAL_VERIFIER = (
    'User: ### Question: {question}\n\n### Ground Truth Answer: {ground_truth}\n\n### Student Answer: {st'
    'udent_answer}\n\nFor the above question, please verify if the student\'s answer is equivalent to the'
    ' ground truth answer.\nDo not solve the question by yourself; just check if the student\'s answer is'
    ' equivalent to the ground truth answer.\nIf the student\'s answer is correct, output "Final Decision'
    ': Yes". If the student\'s answer is incorrect, output "Final Decision: No". Assistant:'
)

# facebookresearch/fairseq2 (branch online_training), src/fairseq2/recipes/lm/_online_finetune/_generative_judge.py,
# POINTWISE_J1_PROMPT @ b8bbbbad97446b8a4b6ac70a98e2472a3650beea
J1_POINTWISE = (
    "\nYou are given a user question and a response from an AI assistant. Your task is to act as an impar"
    "tial judge and evaluate how well the response fulfills the user's instructions. You will be shown mu"
    "ltiple responses to the same prompt, but only one at a time. Evaluate each response independently. "
    "\n\nThink carefully about how to assess the quality of the response, and enclose your reasoning with"
    "in <think> and </think> tags. Your reasoning should include your evaluation criteria, a clear unders"
    "tanding of what an ideal response would look like for this particular question, and a concrete examp"
    "le of such an ideal or reference answer if possible. Then compare the assistant's response to your i"
    "deal or reference answer, explaining how it aligns with or deviates from your expectations. Be speci"
    "fic and avoid vague or overly general judgments. Remain as objective as possible. \n\nFinally, assig"
    "n the assistant's response a score from 0 to 10, using either an integer or a decimal with up to 0.1"
    " precision. A higher score should indicate a higher-quality response. Enclose the score within <scor"
    "e> and </score> tags.\n\nFormat your output like this: \n<think> your_thinking_process </think> \n<s"
    "core> your_score </score>\n\nBelow are the user's question and the assistant's response:\n\n[User Qu"
    "estion]\n{instruction}\n\n[The Start of the Assistant's Answer]\n{response}\n[The End of the Assista"
    "nt's Answer]\n"
)

# open-compass/CompassVerifier, src/prompts.py, CV_PROMPT and CV_COT_PROMPT @ 2d7cba6df0b21f9c6121786ac1e5770c68473598
CV_PROMPT = (
    '\nPlease as a grading expert, judge whether the final answers given by the candidates below are cons'
    'istent with the standard answers, that is, whether the candidates answered correctly. \nHere are som'
    'e evaluation criteria:\n1. Please refer to the given standard answer. You don\'t need to re-generate'
    ' the answer to the question because the standard answer has been given. You only need to judge wheth'
    'er the candidate\'s answer is consistent with the standard answer according to the form of the quest'
    'ion. THE STANDARD ANSWER IS ALWAYS CORRECT AND THE QUESTION IS PERFECTLY VALID. NEVER QUESTION THEM.'
    '\n2. ONLY compare the FINAL ANSWER - COMPLETELY IGNORE any potential errors in the REASONING PROCESS'
    'ES.\n3. Some answers may be expressed in different ways, such as some answers may be a mathematical '
    'expression, some answers may be a textual description, as long as the meaning expressed is the same.'
    ' Before making a judgment, please understand the question and the standard answer first, and then ju'
    'dge whether the candidate\'s answer is correct.\n4. Some answers may consist of multiple items, such'
    ' as multiple-choice questions, multiple-select questions, fill-in-the-blank questions, etc. Regardle'
    'ss of the question type, the final answer will be considered correct as long as it matches the stand'
    'ard answer, regardless of whether the reasoning process is correct. For multiple-select questions an'
    'd multi-blank fill-in-the-blank questions, all corresponding options or blanks must be answered corr'
    'ectly and match the standard answer exactly to be deemed correct.\n5. If the prediction is given wit'
    'h \\boxed{{}}, please ignore the \\boxed{{}} and only judge whether the candidate\'s answer is consi'
    'stent with the standard answer.\n6. If the candidate\'s answer is invalid (e.g., incomplete (cut off'
    ' mid-response), lots of unnormal repetitive content, or irrelevant to the question, saying it can\'t'
    ' answer the question because some irresistible factors, like ethical issues, no enough information, '
    'etc.), select option C (INVALID).Please judge whether the following answers are consistent with the '
    'standard answer based on the above criteria. Grade the predicted answer of this new question as one '
    'of:\nA: CORRECT \nB: INCORRECT\nC: INVALID\nJust return the letters "A", "B", or "C", with no text a'
    'round it.\nHere is your task. Simply reply with either CORRECT, INCORRECT, or INVALID. Don\'t apolog'
    'ize or correct yourself if there was a mistake; we are just trying to grade the answer.\n<Original Q'
    'uestion Begin>:\n{question}\n<Original Question End>\n<Standard Answer Begin>:\n{gold_answer}\n<Stan'
    'dard Answer End>\n<Candidate\'s Answer Begin>: \n{llm_response}\n<Candidate\'s Answer End>\nJudging '
    'the correctness of the candidate\'s answer:\n'
)

CV_COT_PROMPT = (
    'As a grading expert, your task is to determine whether the candidate\'s final answer matches the pro'
    'vided standard answer. Follow these evaluation guidelines precisely:\n\nEvaluation Protocol:\n1. Ref'
    'erence Standard:\n   - The standard answer is definitive and always correct\n   - The question is pe'
    'rfectly valid - never question them\n   - Do not regenerate answers; only compare with the given sta'
    'ndard\n\n2. Comparison Method:\n   - Carefully analyze the question\'s requirements and the standard'
    ' answer\'s structure\n     * Determine whether the question expects exact matching of the entire sta'
    'ndard answer or allows partial matching of its components.\n     * This determination must be made b'
    'ased on the question\'s phrasing and the nature of the standard answer.\n   - Compare ONLY the candi'
    'date\'s final answer (ignore all reasoning/explanation errors)\n   - Disregard any differences in fo'
    'rmatting or presentation style\n   - For mathematical expressions: calculate step by step whether th'
    'e two formulas are equivalent\n   - For multiple-choice questions: compare only the final choice and'
    ' corresponding option content\n\n3. Multi-part Answers:\n   - For questions requiring multiple respo'
    'nses (e.g., multi-select):\n   - All parts must match the standard answer exactly. \n   - Compare ea'
    'ch sub-answer step by step. Partial matches are considered incorrect.\n\n4. Validity Check:\n   - Re'
    'ject answers that are:\n     * Incomplete (cut off mid-sentence in the final sentence, lacking a com'
    'plete response) → Label as INCOMPLETE\n     * Repetitive (repetition of words or phrases in a loop) '
    '→ Label as REPETITIVE\n     * Explicit refusals (e.g., directly return "I cannot answer/provide/acce'
    'ss ...") → Label as REFUSAL\n   - For invalid answers, specify the type in the judgment (e.g., \\box'
    'ed{{C}} - INCOMPLETE).\n\nGrading Scale:\n\\boxed{{A}} - CORRECT: \n   - Answer matches standard exa'
    'ctly (including equivalent expressions)\n   - For numerical answers: consider as equivalent if value'
    's match when rounded appropriately\n   - Semantically equivalent responses\n\n\\boxed{{B}} - INCORRE'
    'CT:\n   - Any deviation from standard answer\n   - Partial matches for multi-part questions\n\n\\box'
    'ed{{C}} - INCOMPLETE/REPETITIVE/REFUSAL:\n   - Fails validity criteria above (must specify: INCOMPLE'
    'TE/REPETITIVE/REFUSAL)\n\nExecution Steps and Output Formats:\n\nAnalysis step by step: [\nThoroughl'
    'y evaluate the candidate\'s answer including:\n(1) First check if the answer is INCOMPLETE (cut off '
    'mid-sentence), REPETITIVE (looping repetition), or a REFUSAL (explicit denial) - if so, immediately '
    'classify as \\boxed{{C}} with the corresponding type.\n(2) Analyze the question\'s core requirements'
    ' and the standard answer\'s structure, for example:\n- Strict requirements: Identify mandatory const'
    'raints (e.g., simplification, answer order, multi-part completeness)\n- Tolerant allowances: Ignore '
    'non-critical deviations (e.g., missing option labels in MCQs, equivalent but unformatted expressions'
    ')\n- Required answer type, precision level, etc.\n(3) Perform a detailed comparison between the cand'
    'idate\'s final answer and the standard answer, for example:\n- Content equivalence\n- Permitted vari'
    'ations in numerical precision\n- Allowed expression formats]\nFinal Judgment: \\boxed{{A/B/C}} - <CO'
    'RRECT/INCORRECT/INCOMPLETE/REPETITIVE/REFUSAL>\n\nHere is your task.\n<Original Question Begin>\n{qu'
    'estion}\n<Original Question End>\n\n<Standard Answer Begin>\n{gold_answer}\n<Standard Answer End>\n'
    '\n<Candidate\'s Answer Begin>\n{llm_response}\n<Candidate\'s Answer End>\n\nAnalysis step by step an'
    'd Final Judgment:\n'
)

# arXiv 2507.08794 (One Token to Fool LLM-as-a-Judge), Table 7 / Appendix B.1: Master-RM's prompt (system turn
# "You are a helpful assistant."; the user turn as the authors' RM_PROMPT)
MASTER_RM = (
    "\nGiven a problem, determine whether the final answer in the provided (incomplete) solution process "
    "matches the reference answer.  \nThe reference answer may be one single option character (e.g., A, B"
    ", C, D), a numerical value, an expression, or a list of answers if multiple questions are involved. "
    " \n**The reference answer may be in Chinese or another language, but your evaluation should be langu"
    "age-agnostic.**  \n\nYour task:  \n- Compare the final output of the solution process with the refer"
    "ence answer.  \n- If they **match exactly**, output **YES**.  \n- If they **do not match**, output *"
    "*NO**.  \n- If the solution process is unclear, incomplete, or ambiguous, assume it is incorrect and"
    " output **NO**.  \n\nYour output must be strictly **'YES'** or **'NO'**, with no additional words, p"
    "unctuation, or explanation.  \n\n---\n\n**Question:**  \n{question}  \n\n**Solution Process (Final S"
    "tep Only):**  \n{response}  \n\n**Reference Answer:**  \n{reference}  \n\n**Output:**  \n"
)

Q, R, REF = "What is $\\frac{1}{2} + 0.25$?", "1/2 + 1/4 = 3/4.\n\nFinal Answer: $\\boxed{0.75}$", "3/4"
SOURCES = {  # profile -> (messages as the source builds them, from the same values)
    "xverify": [{"role": "user", "content": XVERIFY.format(question=Q, output=R, answer=REF)}],
    "general-verifier": [{"role": "user", "content": GENERAL_VERIFIER.format(
        question=Q, ground_truth=REF, student_answer="0.75")}],  # the extracted final answer
    "j1-pointwise": [{"role": "user", "content": J1_POINTWISE.format(instruction=Q, response=R)}],
    "compass-verifier": [{"role": "user", "content": CV_PROMPT.format(question=Q, gold_answer=REF, llm_response=R)}],
    "compass-verifier-cot": [{"role": "user", "content": CV_COT_PROMPT.format(
        question=Q, gold_answer=REF, llm_response=R)}],
    "master-rm": [{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": MASTER_RM.format(question=Q, response=R.splitlines()[-1],
                                                               reference=REF)}],
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_the_profile_renders_its_sources_prompt(nano_tokenizer, name):
    profile = load_profile(name)
    assert profile.origin.startswith("published:")
    shown = {"full": R, "final_answer": final_answer(R), "last_line": last_line(R)}[profile.response_input]
    if profile.prompt is not None:
        renderer = PromptRenderer(nano_tokenizer, raw_prompt=profile.prompt_for(True))
    else:
        renderer = PromptRenderer(nano_tokenizer, profile.messages_for(True))
    assert renderer.fill(Q, shown, REF) == SOURCES[name]


@pytest.mark.parametrize("name", ["libra", "libra-ref", "j1-pointwise-ref", "nano"])
def test_our_own_profiles_say_so(name):
    assert load_profile(name).origin.startswith("ours:")


@pytest.mark.parametrize(("name", "text", "label", "reward"), [
    ("xverify", "Correct", "correct", 1.0),
    ("xverify", " [Incorrect]\n", "incorrect", 0.0),
    ("xverify", "Correct. The answer matches, but incorrect units", None, None),  # not a one-word reply
    ("xverify", "The output restates the question.\nIncorrect", "incorrect", 0.0),  # the last label line
    ("general-verifier", "The answer matches.\nFinal Decision: Yes", "yes", 1.0),
    ("general-verifier", "Final Decision: Yes\nwait. Final Decision: No", "no", 0.0),  # the last one
    ("j1-pointwise", "<think>fine</think>\n<score> 7.5 </score>", "7.5", 0.75),
    ("j1-pointwise", "<think>ok</think> <score>8/10</score>", "8", 0.8),
    ("j1-pointwise", "<think>ok</think> <score> 8.0 </score>", "8", 0.8),
    ("j1-pointwise", "<think>ok</think> <score> 10 </score>", "10", 1.0),
    ("j1-pointwise", "<think>ok</think> <score> 11 </score>", None, None),  # out of range: not a verdict
    ("j1-pointwise", "<think>ok</think> <score> 7.25 </score>", None, None),  # two decimals: J1's regex refuses
    ("j1-pointwise", "<score> 9 </score>", None, None),  # no end of thinking: no verdict
    ("compass-verifier", "A", "a", 1.0),
    ("compass-verifier", "B", "b", 0.0),
    ("compass-verifier", "C", "c", 0.0),
    ("compass-verifier", "Correct answer given", None, None),  # a capital C inside a word is no label
    ("compass-verifier-cot", "Analysis... B looks wrong.\nFinal Judgment: \\boxed{A} - CORRECT", "a", 1.0),
    ("master-rm", "**YES**", "yes", 1.0),
    ("master-rm", "NO", "no", 0.0),
])
def test_verdicts_read_as_their_sources_read_them(name, text, label, reward):
    profile = load_profile(name)
    parsed = parse_verdict(text, profile.think_end, profile.verdict_pattern).label
    canonical = None if profile.reward_for(parsed) is None else profile.label_of(parsed)
    assert (canonical, profile.reward_for(parsed)) == (label, reward)


@pytest.mark.parametrize(("response", "answer"), [
    ("So x = 2.\n\nFinal Answer: $\\boxed{\\frac{\\sqrt{3}}{2}}$", "\\frac{\\sqrt{3}}{2}"),  # nested braces
    ("First \\boxed{1}, then I fixed it: \\boxed{2}.", "2"),  # the last box
    ("\\boxed{} is empty.\nFinal Answer: 12\n", "12"),  # an empty box falls through
    ("Step 1 ... Step 9.\nThe answer is: 17<|im_end|>", "17"),  # no newline at the end; end token stripped
    ("Answer: 3\nwait, recheck.\nFinal Answer: 4\nDone.", "4"),  # the latest marker wins
    ("I think it is probably 42.", None),
    ("", None),
])
def test_final_answer_extraction_on_real_looking_responses(response, answer):
    assert final_answer(response) == answer


def test_last_line_is_the_last_non_empty_line():
    assert last_line("Step 1.\n\nSo the answer is 5.  \n\n") == "So the answer is 5."
    assert last_line(" \n\t\n") is None
