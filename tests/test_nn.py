import numpy as np
import pytest
import torch

from sktextae.batching import Collator
from sktextae.nn import ARCHITECTURES, DECODERS, ENCODERS, SCRATCH_DECODERS, build_autoencoder, build_module, recurrent
from sktextae.nn.base import masked_mean
from sktextae.lsa_start import BAG_SMOOTHING, start_bag_decoder, start_from_lsa
from sktextae.nn.bow import LSA_START_STD
from sktextae.token_ids import TokenIds
from sktextae.tokenization import BOS_ID

VOCAB = 30
TINY = dict(vocab_size=VOCAB, latent_dim=6, embedding_dim=8, hidden_dim=12, num_layers=2, num_heads=2,
            dropout=0.1, max_length=10)


def batch(sequence_targets):
    seqs = [torch.tensor([5, 6, 7, 8]).numpy(), torch.tensor([9]).numpy(), torch.tensor([], dtype=torch.long).numpy()]
    return Collator(sequence_targets=sequence_targets)(seqs)


@pytest.fixture(params=ARCHITECTURES)
def module(request):
    torch.manual_seed(0)
    return build_module(request.param, **TINY)


def test_forward_backward_shapes(module):
    inputs, targets = batch(module.is_sequence_decoder)
    logits, aux_loss = module(**inputs)
    expected = (3, targets.shape[1], VOCAB) if module.is_sequence_decoder else (3, VOCAB)
    assert logits.shape == expected
    assert aux_loss is None
    logits.float().logsumexp(-1).sum().backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_encode_shape_and_determinism_in_eval(module):
    inputs, _ = batch(module.is_sequence_decoder)
    module.eval()
    latent = module.encode(inputs["input_ids"], inputs["lengths"])
    assert latent.shape == (3, TINY["latent_dim"])
    torch.testing.assert_close(latent, module.encode(inputs["input_ids"], inputs["lengths"]))


def test_padding_does_not_change_a_texts_latent(module):
    # The same text alone and batched with a longer one must encode identically.
    module.eval()
    collate = Collator(sequence_targets=module.is_sequence_decoder)
    alone, _ = collate([torch.tensor([5, 6]).numpy()])
    padded, _ = collate([torch.tensor([5, 6]).numpy(), torch.arange(5, 14).numpy()])
    z_alone = module.encode(alone["input_ids"], alone["lengths"])
    z_padded = module.encode(padded["input_ids"], padded["lengths"])[:1]
    torch.testing.assert_close(z_alone, z_padded, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("architecture", [a for a in ARCHITECTURES if a != "bow"])
def test_step_by_step_decoding_matches_teacher_forcing(architecture):
    torch.manual_seed(0)
    module = build_module(architecture, **TINY).eval()
    latent = torch.randn(2, TINY["latent_dim"])
    decoder_input = torch.tensor([[BOS_ID, 5, 6, 7], [BOS_ID, 9, 10, 11]])
    forced = module.decode(latent, decoder_input)  # (B, T, V)
    state = module.init_state(latent)
    for t in range(decoder_input.shape[1]):
        logits, state = module.step(decoder_input[:, t], state)
        torch.testing.assert_close(logits, forced[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_recurrent_encoder_reads_each_row_as_if_alone(cell, num_layers):
    # Each direction's stack run on the row alone, unpadded: the batched encoder must agree, padding or not.
    torch.manual_seed(0)
    module = build_module(cell, **{**TINY, "num_layers": num_layers}).eval()
    rng = np.random.default_rng(0)
    texts = [rng.integers(5, VOCAB, size) for size in (0, 2, 39, 11)]  # + EOS: lengths 1, 3, 40, 12
    inputs, _ = Collator()(texts)
    hidden = module.encode_hidden(inputs["input_ids"], inputs["lengths"])  # (B, 2H)
    assert hidden.shape == (4, 2 * TINY["hidden_dim"])
    for row, length in enumerate(inputs["lengths"].tolist()):
        encoder = module.encoder
        embedded = encoder.embedding(inputs["input_ids"][row:row + 1, :length])  # (1, length, E)
        forward_last = encoder.forward_rnn(embedded)[0][0, -1]  # (H,)
        backward_last = encoder.backward_rnn(embedded.flip(1))[0][0, -1]  # (H,)
        torch.testing.assert_close(hidden[row], torch.cat([forward_last, backward_last]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_recurrent_encoder_never_reads_the_device(cell, training, monkeypatch):
    # On a GPU each of these would wait for the device: a synchronisation in every training step.
    def fail(*args, **kwargs):
        raise AssertionError("the encoder read a value from the device")

    torch.manual_seed(0)
    module = build_module(cell, **TINY).train(training)
    inputs, _ = batch(module.is_sequence_decoder)
    for name in ("cpu", "tolist", "item", "__bool__", "__int__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, fail)
    monkeypatch.setattr(torch.nn.utils.rnn, "pack_padded_sequence", fail)
    monkeypatch.setattr(recurrent, "pack_padded_sequence", fail, raising=False)  # in case it is imported there
    hidden = module.encode_hidden(inputs["input_ids"], inputs["lengths"])
    monkeypatch.undo()
    assert hidden.shape == (3, 2 * TINY["hidden_dim"]) and torch.isfinite(hidden).all()


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_module("cnn", **TINY)


@pytest.mark.parametrize("side, names", [("encoder", ENCODERS), ("decoder", DECODERS)])
def test_unknown_encoder_or_decoder_is_refused_with_the_valid_names(side, names):
    pair = {"encoder": "gru", "decoder": "gru", side: "cnn"}
    with pytest.raises(ValueError, match=f"{side} must be one of") as error:
        build_autoencoder(**pair, **TINY)
    assert all(name in str(error.value) for name in names)


# --------------------------------------------------------------------------- every encoder x decoder pair

@pytest.mark.parametrize("decoder", SCRATCH_DECODERS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_encoder_pairs_with_every_decoder(encoder, decoder):
    torch.manual_seed(0)
    module = build_autoencoder(encoder=encoder, decoder=decoder, variational=True, **TINY)
    inputs, targets = batch(module.is_sequence_decoder)
    logits, kl = module(**inputs)
    assert logits.shape == ((3, targets.shape[1], VOCAB) if decoder != "bag" else (3, VOCAB))
    assert kl.shape == (3, TINY["latent_dim"])
    (logits.float().logsumexp(-1).sum() + kl.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters() if p.requires_grad)
    module.eval()
    latent = module.encode(inputs["input_ids"], inputs["lengths"])
    assert latent.shape == (3, TINY["latent_dim"])
    if decoder != "bag":  # one decoding step from the latent vector
        step_logits, _ = module.step(torch.full((3,), BOS_ID), module.init_state(latent))
        torch.testing.assert_close(step_logits, module.decode(latent, inputs["decoder_input_ids"][:, :1])[:, 0],
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_each_encoder_reads_a_text_the_same_alone_or_padded(encoder):
    torch.manual_seed(0)
    module = build_autoencoder(encoder=encoder, decoder="bag", **TINY).eval()
    collate = Collator(sequence_targets=False)
    alone, _ = collate([np.array([5, 6, 7])])
    padded, _ = collate([np.array([5, 6, 7]), np.arange(5, 14)])  # 9 tokens + EOS: within max_length + 1
    torch.testing.assert_close(module.encode(alone["input_ids"], alone["lengths"]),
                               module.encode(padded["input_ids"], padded["lengths"])[:1], atol=1e-5, rtol=1e-5)


def test_matching_pairs_share_one_token_table_and_others_keep_their_own():
    shared = build_autoencoder(encoder="conv", decoder="gru", **TINY)
    assert shared.decoder.embedding is shared.encoder.embedding
    own = build_autoencoder(encoder="gru", decoder="transformer", **TINY)  # nn.Embedding vs token + position
    assert own.decoder.embedding is not own.encoder.embedding


@pytest.mark.parametrize("decoder", SCRATCH_DECODERS)
def test_pretrained_decoder_embeddings_start_the_tied_output_layer(decoder):
    start = torch.randn(VOCAB - 10, TINY["embedding_dim"])
    module = build_autoencoder(encoder="gru", decoder=decoder, decoder_vocab_size=VOCAB - 10,
                               decoder_embeddings=start, **TINY)
    torch.testing.assert_close(module.decoder.embedding.weight.detach(), start)
    assert module.decoder.output.weight is module.decoder.embedding.weight
    latent = torch.randn(2, TINY["latent_dim"])
    ids = torch.tensor([[BOS_ID, 5], [BOS_ID, 6]])
    assert module.decode(latent, ids).shape[-1] == VOCAB - 10


@pytest.mark.parametrize("architecture", [a for a in ARCHITECTURES if a != "bow"])
def test_reorder_state_selects_reorders_and_repeats_rows(architecture):
    # Decoding after reorder_state must match decoding the reordered latent vectors from the start.
    torch.manual_seed(0)
    module = build_module(architecture, **TINY).eval()
    latent = torch.randn(3, TINY["latent_dim"])
    index = torch.tensor([2, 0, 0, 1])
    prefix = torch.tensor([[BOS_ID, 5, 6], [BOS_ID, 7, 8], [BOS_ID, 9, 10]])
    state = module.init_state(latent)
    for t in range(2):
        _, state = module.step(prefix[:, t], state)
    state = module.reorder_state(state, index)
    logits, state = module.step(prefix[index, 2], state)

    expected_state = module.init_state(latent[index])
    for t in range(3):
        expected, expected_state = module.step(prefix[index, t], expected_state)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    # And the state goes on decoding the same way.
    torch.testing.assert_close(module.step(torch.tensor([11, 12, 13, 14]), state)[0],
                               module.step(torch.tensor([11, 12, 13, 14]), expected_state)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("architecture", [a for a in ARCHITECTURES if a != "bow"])
def test_reorder_state_can_drop_rows(architecture):
    torch.manual_seed(0)
    module = build_module(architecture, **TINY).eval()
    latent = torch.randn(4, TINY["latent_dim"])
    state = module.reorder_state(module.init_state(latent), torch.tensor([3]))
    logits, _ = module.step(torch.tensor([BOS_ID]), state)
    expected, _ = module.step(torch.tensor([BOS_ID]), module.init_state(latent[3:]))
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def two_topics(n_texts, *, seed=0):
    """Texts of 3-8 tokens drawn from one of two disjoint sets of 8 tokens, beside one token they all hold;
    the topic of each."""
    rng = np.random.default_rng(seed)
    topics = rng.integers(2, size=n_texts)
    texts = [np.concatenate([[5], rng.choice(np.arange(6, 14) + 8 * topic, size=rng.integers(3, 9))])
             for topic in topics]
    return texts, topics


def projections(encoder, texts):
    """The encoder's projection of each text (its output's ``projection`` columns), as fit reads them."""
    inputs, _ = Collator(sequence_targets=False)(texts)
    with torch.no_grad():
        return encoder.eval()(inputs["input_ids"], inputs["lengths"])[:, encoder.projection].numpy()


def test_the_tfidf_encoder_weighs_tokens_as_tfidfvectorizer_and_ignores_padding():
    from sklearn.feature_extraction.text import TfidfTransformer

    torch.manual_seed(0)
    encoder = build_module("bow", **TINY).encoder
    assert (encoder.output_dim, encoder.projection) == (12 + 8, slice(12, 20))
    texts = [np.array([5, 6, 6, 6, 7]), np.array([7, 8]), np.array([9, 9])]
    counts = np.stack([np.bincount(text, minlength=VOCAB) for text in texts]).astype(float)
    tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
    with torch.no_grad():
        encoder.idf.copy_(torch.as_tensor(tfidf.idf_, dtype=torch.float32))
        encoder.idf[2] = 0.0  # the EOS the encoder reads after each text: ignored
    inputs, _ = Collator(sequence_targets=False)(texts)
    weights = encoder.token_weights(inputs["input_ids"], inputs["lengths"])  # (3, T)
    per_token = torch.zeros(3, VOCAB).scatter_add(1, inputs["input_ids"], weights)  # (3, V)
    np.testing.assert_allclose(per_token.numpy(), tfidf.transform(counts).toarray(), atol=1e-6)
    # Padding changes nothing: each text alone gives the projection it gets in the batch.
    together = projections(encoder, texts)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(projections(encoder, [text])[0], together[i], atol=1e-6)


def test_the_lsa_start_makes_the_projection_lsa_and_the_encoder_still_trains():
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    torch.manual_seed(0)
    module = build_module("bow", **TINY)
    texts, topics = two_topics(60)
    start_from_lsa(module.encoder, texts)  # ignoring padding, BOS, EOS and the mask (ids 0, 1, 2 and 4)
    counts = np.stack([np.bincount(text, minlength=VOCAB) for text in texts]).astype(float)
    lsa = TruncatedSVD(2, algorithm="arpack").fit_transform(TfidfTransformer(sublinear_tf=True).fit_transform(counts))
    projected = projections(module.encoder, texts)  # (N, 8): with the EOS the encoder reads, which weighs 0
    # LSA's first two components, each up to its sign and the start's one scale.
    scales = [np.dot(projected[:, k], lsa[:, k]) / np.dot(lsa[:, k], lsa[:, k]) for k in range(2)]
    assert abs(abs(scales[0]) - abs(scales[1])) < 1e-3 * abs(scales[0])
    np.testing.assert_allclose(projected[:, :2], lsa * scales, atol=1e-3 * abs(scales[0]))
    # One component tells the topics apart (the other is the direction of the token they all hold).
    def separates(unit):
        side = unit > (unit[topics == 0].mean() + unit[topics == 1].mean()) / 2
        return (side == (topics == 1)).all() or (side == (topics == 0)).all()

    assert separates(projected[:, 0]) or separates(projected[:, 1])
    table = module.encoder.embedding.weight.detach()
    assert (table[0] == 0).all() and (table[22:] == 0).all()  # padding, and tokens no text holds
    assert (module.encoder.idf[[0, 1, 2, 4]] == 0).all() and (module.encoder.idf[5:22] > 0).all()
    assert module.encoder.idf[3] == module.encoder.idf.max()  # an unknown word that no training text holds
    assert projected.std(0).mean() == pytest.approx(LSA_START_STD, rel=1e-3)
    module.train()
    inputs, _ = Collator(sequence_targets=False)(texts)
    logits, _ = module(**inputs)
    logits.logsumexp(-1).sum().backward()
    assert module.encoder.embedding.weight.grad.abs().sum() > 0


def test_bigrams_of_neighbouring_words_count_as_terms_of_their_own_weighed_as_tfidf():
    from sklearn.feature_extraction.text import TfidfTransformer

    from sktextae.nn.bow import BIGRAM_WEIGHT

    torch.manual_seed(0)
    terms = np.arange(VOCAB)
    terms[8] = 0  # a mark: it counts as nothing and breaks a bigram
    encoder = build_module("bow", **TINY, bow_terms=terms, bow_bigrams=3).encoder
    assert encoder.bigrams == 3 and encoder.bigram_embedding.num_embeddings == 4
    # Bigrams: (5, 6) in three texts, (6, 7), (7, 9) and (9, 10) in two: the table's three places take (5, 6)
    # and the first two of the others by their keys. A text's last word and the next text's first make none,
    # nor do 8 (a mark), 3 (an unknown word) and the EOS the encoder reads.
    texts = [np.array([5, 6, 7, 9]), np.array([5, 6, 8, 7]), np.array([5, 6, 7, 9, 10]), np.array([3, 5, 9, 10])]
    start_from_lsa(encoder, texts)
    rows = {int(key): int(row) for key, row in zip(encoder.bigram_keys, encoder.bigram_rows) if key >= 0}
    assert rows == {5 * VOCAB + 6: 1, 6 * VOCAB + 7: 2, 7 * VOCAB + 9: 3}
    inputs, _ = Collator(sequence_targets=False)(texts)  # each text and its EOS, padded
    found = encoder.bigram_ids(encoder.terms[inputs["input_ids"]], inputs["lengths"])  # (4, T - 1)
    np.testing.assert_array_equal(found[:, :4].numpy(), [[1, 2, 3, 0], [1, 0, 0, 0], [1, 2, 3, 0], [0, 0, 0, 0]])
    assert (found[:, 4:] == 0).all()
    # The projection: sublinear TF-IDF over the words and the bigrams (these scaled), L2-normalised.
    columns = [5, 6, 7, 9, 10, 3]
    pairs = [[1, 1, 1], [1, 0, 0], [1, 1, 1], [0, 0, 0]]
    counts = np.array([[list(text).count(c) for c in columns] + pair for text, pair in zip(texts, pairs)], dtype=float)
    tfidf = TfidfTransformer(sublinear_tf=True, norm=None).fit_transform(counts).toarray()
    tfidf[:, len(columns):] *= BIGRAM_WEIGHT
    tfidf /= np.linalg.norm(tfidf, axis=1, keepdims=True)
    table = np.concatenate([encoder.embedding.weight.detach().numpy()[columns],
                            encoder.bigram_embedding.weight.detach().numpy()[1:]])  # (9, C)
    np.testing.assert_allclose(projections(encoder, texts), tfidf @ table, atol=1e-5)
    # Padding changes nothing.
    for i, text in enumerate(texts):
        np.testing.assert_allclose(projections(encoder, [text])[0], projections(encoder, texts)[i], atol=1e-6)
    encoder.train()
    encoder(inputs["input_ids"], inputs["lengths"]).sum().backward()
    assert encoder.bigram_embedding.weight.grad[1:].abs().sum() > 0 and (encoder.bigram_embedding.weight.grad[0] == 0).all()


def test_the_bigram_table_holds_as_many_as_the_encoder_counts_and_a_corpus_of_one_word_texts_none():
    torch.manual_seed(0)
    encoder = build_module("bow", **TINY, bow_terms=np.arange(VOCAB), bow_bigrams=1).encoder
    texts = [np.array([5, 6, 7]), np.array([5, 6, 7]), np.array([6, 7]), np.array([9])]
    start_from_lsa(encoder, texts)  # (6, 7) in three texts, (5, 6) in two: the most frequent only
    assert [int(k) for k in encoder.bigram_keys if k >= 0] == [6 * VOCAB + 7]
    assert (encoder.bigram_idf[0] == 0) and encoder.bigram_idf[1] > 0
    one_word = build_module("bow", **TINY, bow_terms=np.arange(VOCAB), bow_bigrams=4).encoder
    start_from_lsa(one_word, [np.array([5]), np.array([6]), np.array([], dtype=np.int64), np.array([5])])
    assert (one_word.bigram_keys == -1).all() and (one_word.bigram_idf == 0).all()
    assert np.isfinite(projections(one_word, [np.array([5]), np.array([5, 6])])).all()


def test_the_mean_encoder_of_earlier_models_averages_its_embeddings():
    torch.manual_seed(0)
    module = build_autoencoder(encoder="bow", decoder="bag", bow_weighting="mean", **TINY)
    encoder = module.encoder.eval()
    assert (encoder.output_dim, encoder.projection) == (12, None) and "idf" not in encoder.state_dict()
    inputs, _ = batch(False)
    expected = encoder.mlp(masked_mean(encoder.embedding(inputs["input_ids"]), inputs["lengths"]))
    torch.testing.assert_close(encoder(inputs["input_ids"], inputs["lengths"]), expected)
    with pytest.raises(ValueError, match="TF-IDF bag-of-words encoder"):
        start_from_lsa(encoder, two_topics(10)[0])
    with pytest.raises(ValueError, match="weighting must be one of"):
        build_autoencoder(encoder="bow", decoder="bag", bow_weighting="max", **TINY)


def test_tokens_of_one_term_count_together_and_a_token_of_term_0_counts_as_nothing():
    torch.manual_seed(0)
    terms = np.arange(VOCAB)
    terms[6], terms[8] = 5, 0  # 6 is another form of 5; 8 is a mark that counts as nothing
    encoder = build_module("bow", **TINY, bow_terms=terms).encoder.eval()
    assert "terms" not in encoder.state_dict()
    start_from_lsa(encoder, two_topics(60)[0])
    assert (encoder.embedding.weight[[6, 8]] == 0).all()  # never read: the start leaves them at 0
    as_terms, as_tokens = projections(encoder, [np.array([5, 6, 7, 8])]), projections(encoder, [np.array([5, 5, 7])])
    np.testing.assert_allclose(as_terms, as_tokens, atol=1e-6)
    with pytest.raises(ValueError, match="terms must be"):
        build_module("bow", **TINY, bow_terms=np.full(VOCAB, VOCAB))
    with pytest.raises(ValueError, match="terms must be"):
        build_autoencoder(encoder="bow", decoder="bag", bow_weighting="mean", bow_terms=terms, **TINY)


def test_lsa_start_past_max_texts_fits_and_scales_on_its_fixed_sample():
    torch.manual_seed(0)
    module = build_module("bow", **TINY)
    texts, _ = two_topics(60)
    start_from_lsa(module.encoder, texts, max_texts=30)
    sample = np.sort(np.random.default_rng(0).choice(len(texts), size=30, replace=False))
    # The scale is read off the sample's projections, whose memory does not grow with the corpus.
    assert projections(module.encoder, [texts[i] for i in sample]).std(0).mean() == pytest.approx(LSA_START_STD, rel=1e-3)
    assert projections(module.encoder, texts).std(0).mean() != pytest.approx(LSA_START_STD, rel=1e-3)


def test_lsa_start_reads_token_ids_in_one_array_as_a_list_and_leaves_them_unchanged():
    texts, _ = two_topics(60)
    ids, order = TokenIds.of(texts), np.random.default_rng(0).permutation(60)
    held = ids.values.copy()
    starts = []
    for sequences in ([texts[i] for i in order], ids[order]):
        torch.manual_seed(0)
        module = build_module("bow", **TINY)
        start_from_lsa(module.encoder, sequences, max_texts=40)
        starts.append((module.encoder.embedding.weight.detach().clone(), module.encoder.idf.clone()))
    for first, second in zip(*starts):
        torch.testing.assert_close(first, second, rtol=0, atol=0)
    np.testing.assert_array_equal(ids.values, held)  # scipy sorts the ids it is given in place: a copy


def test_lsa_start_refuses_an_id_outside_the_vocabulary():
    module = build_module("bow", **TINY)
    with pytest.raises(ValueError, match="encoder's vocabulary"):
        start_from_lsa(module.encoder, [np.array([5, VOCAB])])


def test_the_bag_decoder_starts_at_the_texts_token_frequencies_whatever_the_latent():
    torch.manual_seed(0)
    module = build_module("bow", **TINY)
    texts = [np.array([5, 6, 6]), np.array([6, 7]), np.array([], dtype=np.int64)]
    start_bag_decoder(module.decoder, TokenIds.of(texts))
    counts = np.bincount([5, 6, 6, 6, 7], minlength=VOCAB) + BAG_SMOOTHING
    bias = module.decoder.output.bias.detach().double()
    torch.testing.assert_close(bias.softmax(0), torch.from_numpy(counts / counts.sum()))
    assert bias[6] > bias[5] > bias[8] and torch.isfinite(bias).all()  # 6 most often; 8 in no text, yet finite
    # With its last layer at 0, the decoder predicts those frequencies for any latent vector.
    torch.nn.init.zeros_(module.decoder.output.weight)
    logits = module.decoder(torch.randn(4, TINY["latent_dim"]))
    torch.testing.assert_close(logits.double().softmax(-1), torch.from_numpy(counts / counts.sum()).expand(4, -1))
    before = module.decoder.output.bias.detach().clone()
    start_bag_decoder(module.decoder, [np.array([], dtype=np.int64)])  # no token: left as it was
    torch.testing.assert_close(module.decoder.output.bias.detach(), before)
    with pytest.raises(ValueError, match=r"decoder's vocabulary"):
        start_bag_decoder(module.decoder, [np.array([5, VOCAB])])


def test_lsa_start_is_seeded_and_fills_no_more_columns_than_texts():
    starts = []
    for _ in range(2):
        torch.manual_seed(1)
        module = build_module("bow", **TINY)
        start_from_lsa(module.encoder, two_topics(40)[0])
        starts.append(module.encoder.embedding.weight.detach().clone())
    torch.testing.assert_close(starts[0], starts[1])
    module = build_module("bow", **TINY)
    start_from_lsa(module.encoder, [*two_topics(3)[0], np.array([], dtype=np.int64)])  # 4 texts, one empty
    assert torch.isfinite(module.encoder.embedding.weight).all()
    table = module.encoder.embedding.weight.detach()
    assert (table[:, 4:] == 0).all() and (table[:, :4] != 0).any()
    before = table.clone()
    start_from_lsa(module.encoder, [])  # nothing to start from: left as it was
    torch.testing.assert_close(module.encoder.embedding.weight.detach(), before)
