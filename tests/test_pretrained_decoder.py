"""decoder="pretrained": a Transformer decoder warm-started from the pretrained encoder's checkpoint
(Rothe et al. 2020), on the tiny BERT of test_pretrained: built, trained, saved and loaded, decoded."""

import copy
import json
import os

import numpy as np
import pytest
import torch

import sktextae
from sktextae import TextAutoencoder, network
from sktextae import pretrained as pretrained_models
from sktextae.decoding import decode_latent
from sktextae.exceptions import ModelFileError
from sktextae.files import json_sha256
from sktextae.nn import PretrainedDecoder
from sktextae.tokenization import BOS_ID, EOS_ID, MASK_ID, PAD_ID
from sktextae.vocabulary import Vocabulary

os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")

from test_pretrained import TINY, save_tiny_bert  # noqa: E402  (after the skip: it imports transformers too)

# The checkpoint sets the decoder's sizes: hidden_dim, num_layers and num_heads stay at their defaults.
PRETRAINED = {**{k: v for k, v in TINY.items() if k not in ("hidden_dim", "num_layers", "num_heads")},
              "decoder": "pretrained"}


@pytest.fixture(scope="module")
def bert(tmp_path_factory, corpus):
    return str(save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), corpus))


@pytest.fixture(scope="module")
def checkpoint(bert):
    return transformers.BertModel.from_pretrained(bert).eval()


@pytest.fixture(scope="module")
def fitted(bert, corpus):
    return TextAutoencoder(encoder=bert, **PRETRAINED).fit(list(corpus))


def built_module(bert, texts, **params):
    """The network fit() would start from, built from its spec (no training)."""
    model = pretrained_models.load(bert)
    sequences = [np.asarray(model.tokenizer.encode(text, add_special_tokens=False).ids) for text in texts]
    vocabulary = Vocabulary.for_pretrained(model, sequences)
    shapes = TextAutoencoder(encoder=bert, **{**PRETRAINED, **params}).get_params(deep=False)
    spec = network.spec_for(shapes, vocabulary=vocabulary, max_length=TINY["max_length"], dropout=0.1,
                            freeze_encoder=True)
    return network.build_module(spec, decoder_tokens=vocabulary.decoder_tokens), vocabulary


def decoder_layers(module):
    return {name: value.detach().clone() for name, value in module.decoder.model.state_dict().items()}


# --------------------------------------------------------------------------- the nn module

def tiny_decoder_model():
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=20, is_decoder=True,
                                     add_cross_attention=True, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    return transformers.BertModel(config, add_pooling_layer=False)


def test_module_forward_backward_step_and_reorder():
    torch.manual_seed(0)
    decoder = PretrainedDecoder(model=tiny_decoder_model(), latent_dim=6, vocab_size=12)
    assert decoder.embedding.weight.shape == (12, 16) and decoder.output.weight is decoder.embedding.weight
    latent, ids = torch.randn(3, 6), torch.tensor([[BOS_ID, 5, 6, 7], [BOS_ID, 8, 9, PAD_ID], [BOS_ID, 10, 5, 6]])
    logits = decoder(latent, ids)
    assert logits.shape == (3, 4, 12)
    logits.logsumexp(-1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in decoder.parameters())
    decoder.eval()
    with torch.no_grad():
        full = decoder(latent, ids)
        # Causal: what follows a position does not change its logits.
        torch.testing.assert_close(decoder(latent, ids[:, :2]), full[:, :2], atol=1e-5, rtol=1e-5)
        # The latent vector is read: another one changes the logits.
        assert not torch.allclose(decoder(latent.flip(0), ids), full, atol=1e-3)
        state, stepped = decoder.init_state(latent), []
        for t in range(ids.shape[1]):
            step_logits, state = decoder.step(ids[:, t], state)
            stepped.append(step_logits)
        torch.testing.assert_close(torch.stack(stepped, dim=1), full, atol=1e-5, rtol=1e-5)
        index = torch.tensor([2, 0, 0])
        reordered = decoder.reorder_state(decoder.init_state(latent), index)
        step_logits, _ = decoder.step(torch.full((3,), BOS_ID), reordered)
        torch.testing.assert_close(step_logits, full[index, 0], atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- built from the checkpoint

def test_layers_start_from_the_checkpoint_and_cross_attention_is_new(bert, checkpoint, texts):
    torch.manual_seed(0)
    module, vocabulary = built_module(bert, texts)
    decoder = module.decoder
    assert isinstance(decoder, PretrainedDecoder) and decoder.model.config.is_decoder
    source, target = checkpoint.state_dict(), decoder.model.state_dict()
    copied = [name for name in source if not name.startswith(("pooler.", "embeddings.word_embeddings."))]
    assert any(".attention.self.query." in name for name in copied)
    assert any(".intermediate.dense." in name for name in copied)
    assert "embeddings.position_embeddings.weight" in copied
    for name in copied:
        torch.testing.assert_close(target[name], source[name], atol=0, rtol=0, msg=name)
    new = sorted(set(target) - set(source))
    assert new and all(".crossattention." in name for name in new)
    # Random, not a copy of the self-attention beside it.
    cross, own = target["encoder.layer.0.crossattention.self.query.weight"], target["encoder.layer.0.attention.self.query.weight"]
    assert not torch.allclose(cross, own)
    # Token embeddings: the checkpoint's rows of the decoder's tokens, tied to the logits layer.
    start = checkpoint.get_input_embeddings().weight.detach()[torch.from_numpy(vocabulary.decoder_tokens)]
    torch.testing.assert_close(decoder.embedding.weight.detach(), start, atol=0, rtol=0)
    assert decoder.output.weight is decoder.embedding.weight
    assert decoder.embedding.weight.shape[0] == vocabulary.decoder_size
    assert "pooler.dense.weight" not in target  # a decoder never reads it
    # The decoder is a model of its own: no weight shared with the encoder.
    encoder_pointers = {p.data_ptr() for p in module.encoder.parameters()}
    assert not encoder_pointers & {p.data_ptr() for p in decoder.parameters()}


def test_one_training_step_changes_the_decoder_with_a_finite_loss(bert, texts):
    torch.manual_seed(0)
    module, vocabulary = built_module(bert, texts)
    module.encoder.requires_grad_(False)
    before = decoder_layers(module)
    collate = vocabulary.collator(sequence_targets=True)
    sequences = [np.asarray(vocabulary.tokenizer.encode(t, add_special_tokens=False).ids) for t in texts[:8]]
    inputs, targets = collate(sequences)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    module.train()
    logits, _ = module(**inputs)
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD_ID)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    after = decoder_layers(module)
    for name in ("encoder.layer.0.attention.self.query.weight", "encoder.layer.1.crossattention.self.key.weight",
                 "encoder.layer.1.output.dense.weight"):
        assert not torch.allclose(after[name], before[name]), name


def test_a_model_without_cross_attention_is_refused():
    config = json.loads(transformers.DistilBertConfig(vocab_size=60, dim=16, n_layers=1, n_heads=2,
                                                      hidden_dim=32).to_json_string(use_diff=False))
    with torch.device("meta"), pytest.raises(ValueError, match="'distilbert' model has none"):
        pretrained_models.decoder_from_config(config, file="config.json")


# --------------------------------------------------------------------------- the estimator

@pytest.mark.parametrize("freeze_encoder", [True, False])
def test_fit_transform_decode_and_score_frozen_and_fine_tuned(bert, checkpoint, texts, freeze_encoder):
    estimator = TextAutoencoder(encoder=bert, **{**PRETRAINED, "freeze_encoder": freeze_encoder}).fit(texts)
    module = estimator.net_.module_
    assert isinstance(module.decoder, PretrainedDecoder) and estimator.net_.lr == 1e-3
    assert all(p.requires_grad for p in module.decoder.parameters())
    assert np.isfinite(estimator.net_.history[:, "train_loss"]).all()
    query = "encoder.layer.0.attention.self.query.weight"
    start = checkpoint.state_dict()[query]
    assert not torch.allclose(module.decoder.model.state_dict()[query], start)  # the decoder trained
    encoder_query = module.encoder.model.state_dict()[query]
    assert torch.equal(encoder_query, start) == freeze_encoder  # the encoder only when fine-tuned
    Z = estimator.transform(texts)
    assert Z.shape == (len(texts), TINY["latent_dim"]) and np.isfinite(Z).all()
    decoded = estimator.inverse_transform(Z[:3])
    assert decoded.shape == (3,) and all(isinstance(text, str) for text in decoded)
    assert np.isfinite(estimator.score(texts))


def test_save_and_load_give_the_same_outputs(fitted, texts, tmp_path):
    path = fitted.save(tmp_path / "model")
    assert {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} == {
        "config.json", "tokenizer.json", "model.safetensors", "encoder/config.json"}
    loaded = sktextae.load(path)
    assert isinstance(loaded.net_.module_.decoder, PretrainedDecoder)
    Z = fitted.transform(texts)
    np.testing.assert_array_equal(loaded.transform(texts), Z)
    np.testing.assert_array_equal(loaded.inverse_transform(Z[:4]), fitted.inverse_transform(Z[:4]))
    np.testing.assert_allclose(loaded.score_samples(texts[:6]), fitted.score_samples(texts[:6]), rtol=1e-6)
    np.testing.assert_array_equal(loaded.inverse_transform(Z[:2], strategy="beam"),
                                  fitted.inverse_transform(Z[:2], strategy="beam"))


def test_a_saved_network_with_a_from_scratch_encoder_is_refused(fitted):
    fields = {**network.spec_of(fitted.net_).as_dict(), "encoder": "gru"}
    with pytest.raises(ValueError, match="decoder 'pretrained'.*encoder 'gru'"):
        network.NetworkSpec.from_dict(fields)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_decoding_ends_at_eos_or_at_the_length_bound(fitted, strategy):
    module = copy.deepcopy(fitted.net_.module_).eval()
    latent = torch.randn(3, TINY["latent_dim"])
    token = MASK_ID + 1  # a text token

    def decoded():
        return [[int(i) for i in ids] for ids in decode_latent(module, latent, max_length=7, strategy=strategy)]

    with torch.no_grad():
        module.decoder.output.bias.fill_(0.0)[EOS_ID] = 1e4  # EOS first: empty texts
        assert decoded() == [[], [], []]
        module.decoder.output.bias.fill_(0.0)[token] = 1e4  # never EOS: cut at max_length
        assert decoded() == [[token] * 7] * 3


@pytest.mark.parametrize("params, encoder", [({"encoder": "gru"}, "gru"), ({"architecture": "transformer"}, "transformer")])
def test_a_from_scratch_encoder_is_refused(texts, params, encoder):
    estimator = TextAutoencoder(**{**PRETRAINED, **params})
    with pytest.raises(ValueError, match=rf"decoder='pretrained'.*encoder='{encoder}'.*pass encoder=") as error:
        estimator.fit(texts)
    assert "transformer" in str(error.value) and "bag" in str(error.value)  # the decoders that would do
    assert not hasattr(estimator, "net_")


@pytest.mark.parametrize("decoder", ["gru", "transformer"])
def test_a_resigned_save_that_names_another_decoder_is_refused(fitted, tmp_path, decoder):
    # Its weights are checked against the network config.json describes, on the meta device.
    path = fitted.save(tmp_path / "model")
    config = json.loads((path / "config.json").read_text())
    config["network"]["decoder"] = decoder
    config["config_sha256"] = json_sha256({key: value for key, value in config.items() if key != "config_sha256"})
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="model.safetensors: tensor"):
        sktextae.load(path)


@pytest.mark.parametrize("name, value", [("hidden_dim", 64), ("num_layers", 2), ("num_heads", 2)])
def test_sizes_the_checkpoint_sets_are_refused(bert, texts, name, value):
    estimator = TextAutoencoder(encoder=bert, **{**PRETRAINED, name: value})
    with pytest.raises(ValueError, match=rf"{name}={value} with decoder='pretrained'.*Leave {name} at its default"):
        estimator.fit(texts)
    assert not hasattr(estimator, "net_")
