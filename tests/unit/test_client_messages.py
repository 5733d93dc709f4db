"""What the judge is shown of trainers' chat messages (client side: libra_client.messages; server side:
service.api.chat for slime's message-list prompts): text parts kept, other parts marked, a tool-calling
completion judged whole, never a Python repr."""

from __future__ import annotations

from libra_client.messages import content_text, question_of, response_of
from service.api.chat import question_from_messages

PARTS = [{"type": "image_url", "image_url": {"url": "data:,"}}, {"type": "text", "text": "What is 56 + 71?"},
         {"type": "input_audio", "input_audio": {"data": ""}}]


def test_content_parts_become_text_with_markers_on_both_sides():
    assert content_text(PARTS) == "[image]\nWhat is 56 + 71?\n[input_audio]"
    assert question_from_messages([{"role": "user", "content": PARTS}]) == content_text(PARTS)
    assert "{" not in content_text(PARTS)  # no repr of a dict ever reaches the judge


def test_the_question_is_the_last_user_message():
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "First?"},
              {"role": "assistant", "content": "Yes."}, {"role": "user", "content": PARTS}]
    assert question_of(prompt) == content_text(PARTS) and question_of("plain") == "plain"


def test_a_tool_calling_completion_is_judged_whole():
    completion = [
        {"role": "assistant", "content": "Let me add.", "tool_calls": [
            {"type": "function", "function": {"name": "add", "arguments": '{"a": 347, "b": 58}'}}]},
        {"role": "tool", "content": [{"type": "text", "text": "405"}]},
        {"role": "assistant", "content": "So 347 + 58 = 405."},
    ]
    assert response_of(completion) == ('Let me add.\n[tool call] add({"a": 347, "b": 58})\n\n[tool result] 405'
                                       "\n\nSo 347 + 58 = 405.")
    # Only what follows the last user message is the response (a multi-turn completion's earlier turns
    # belong to the conversation, not to the answer).
    turns = [{"role": "assistant", "content": "old"}, {"role": "user", "content": "again?"}, completion[-1]]
    assert response_of(turns) == "So 347 + 58 = 405."
    assert response_of([{"role": "assistant", "content": None, "tool_calls": [
        {"function": {"name": "f", "arguments": {"x": 1}}}]}]) == '[tool call] f({"x": 1})'
