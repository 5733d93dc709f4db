"""Prompt/response recovery for the trainer endpoints (service/api/chat.py): the question from templated
prompts of every common chat format, the response from a query, trailing special tokens stripped."""

from __future__ import annotations

import pytest

from service.api.chat import question_from_prompt, split_query, strip_trailing_special

CHATML = ("<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 347 + 58?<|im_end|>\n"
          "<|im_start|>assistant\n")
LLAMA3 = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nWhat is 347 + 58?<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n")
GEMMA = "<bos><start_of_turn>user\nWhat is 347 + 58?<end_of_turn>\n<start_of_turn>model\n"
DEEPSEEK = "<｜begin▁of▁sentence｜><｜User｜>What is 347 + 58?<｜Assistant｜><think>\n"
MISTRAL = "<s>[INST] What is 347 + 58? [/INST]"


@pytest.mark.parametrize("prompt", [CHATML, LLAMA3, GEMMA, DEEPSEEK, MISTRAL],
                         ids=["chatml", "llama3", "gemma", "deepseek", "mistral"])
def test_question_from_templated_prompts(prompt):
    assert question_from_prompt(prompt) == "What is 347 + 58?"


def test_untemplated_prompt_falls_back_to_its_text():
    assert question_from_prompt("<s>Question: What is 2 + 2?\nAnswer:") == "Question: What is 2 + 2?\nAnswer:"


def test_split_query_strips_prompt_and_trailing_special_tokens():
    query = CHATML + "347 + 58 = 405.<|im_end|>\n<|endoftext|><|endoftext|><|endoftext|>"
    assert split_query(query, CHATML) == ("What is 347 + 58?", "347 + 58 = 405.")
    # Without the prompt: cut at the last assistant opener.
    assert split_query(query, None) == ("What is 347 + 58?", "347 + 58 = 405.")
    # Special tokens inside the response are the policy's text and stay.
    tricky = CHATML + "I say <|im_end|> correct. 347 + 58 = 415.<|im_end|>"
    assert split_query(tricky, CHATML)[1] == "I say <|im_end|> correct. 347 + 58 = 415."


def test_strip_trailing_special_with_tokenizer_specials():
    assert strip_trailing_special("x = 1.</s><pad><pad>") == "x = 1."
    assert strip_trailing_special("x = 1.[EOS][PAD]", ("[PAD]", "[EOS]")) == "x = 1."
