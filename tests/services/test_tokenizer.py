"""HFTokenizer: a batch in one call to the Rust tokenizer gives what transformers gives per text."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.config import Config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services.lm import HFTokenizer


@pytest.fixture(scope="module")
def hf_tokenizer(model_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    (root / "models").symlink_to(model_cache, target_is_directory=True)
    return Pipeline(Config().copy_with({"data_dir": str(root), "model.path": "tiny"})).engine_tokenizer().tokenizer


def per_text(tokenizer, text):
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(max_size=300) | st.sampled_from(["", " ", "\n\n", "Größe café 東京 🦦", "a  b\tc"]),
                      max_size=12))
def test_a_batch_is_tokenised_as_each_text_alone(hf_tokenizer, texts):
    tok = HFTokenizer(hf_tokenizer)
    assert tok._backend is not None  # the fast path is the one under test
    got = tok.tokenize_many(texts)
    assert [(t.ids, t.offsets) for t in got] == [per_text(hf_tokenizer, t) for t in texts]
    assert [(t.ids, t.offsets) for t in got] == [(tok.tokenize(t).ids, tok.tokenize(t).offsets) for t in texts]


def test_a_backend_that_truncates_is_not_called_directly(hf_tokenizer):
    truncating = copy.deepcopy(hf_tokenizer)
    truncating.backend_tokenizer.enable_truncation(max_length=4)
    tok = HFTokenizer(truncating)
    text = "the otter eats fish by the lake every morning " * 3
    assert tok._backend is None
    assert len(tok.tokenize_many([text])[0].ids) == len(per_text(hf_tokenizer, text)[0]) > 4
