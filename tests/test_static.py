"""``static_encoder=True``: a static student replaces a pretrained encoder after fit (a tiny BERT built from
a config in a temporary folder, loaded through the real path)."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import sktextae
from sktextae import TextAutoencoder, TextAutoencoderClassifier, bigram_choice, distill
from sktextae.nn import PretrainedEncoder, StaticEncoder
from sktextae.nn import bigrams as bigram_table

os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("transformers")

from test_pretrained import TINY, save_tiny_bert  # noqa: E402 (after the skip: it imports transformers)

STATIC = {**TINY, "static_encoder": True, "validation_fraction": 0.2, "patience": 2, "max_epochs": 3}


@pytest.fixture(scope="session")
def bert(tmp_path_factory, corpus):
    return str(save_tiny_bert(tmp_path_factory.mktemp("tiny-bert-static"), corpus))


@pytest.fixture(scope="module")
def teacher(bert, corpus):
    return TextAutoencoder(encoder=bert, **{**STATIC, "static_encoder": False}).fit(list(corpus))


@pytest.fixture(scope="module")
def student(bert, corpus):
    return TextAutoencoder(encoder=bert, **STATIC).fit(list(corpus))


# --------------------------------------------------------------------------- the module

def test_static_encoder_builds_runs_and_trains():
    encoder = StaticEncoder(vocab_size=20, embedding_dim=6)
    ids, lengths = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]]), torch.tensor([3, 2])
    out = encoder(ids, lengths)
    assert out.shape == (2, 6)
    out.sum().backward()
    assert encoder.embedding.weight.grad[5].abs().sum() > 0 and encoder.embedding.weight.grad[0].abs().sum() == 0


def test_at_the_start_it_is_the_plain_mean_of_the_given_vectors_and_ignores_padding():
    vectors = torch.randn(20, 6)
    encoder = StaticEncoder(vocab_size=20, embedding_dim=6, vectors=vectors)
    ids = torch.tensor([[5, 6, 7, 3], [8, 9, 4, 4]])
    out = encoder(ids, torch.tensor([3, 2]))
    torch.testing.assert_close(out[0], vectors[[5, 6, 7]].mean(0))
    torch.testing.assert_close(out[1], vectors[[8, 9]].mean(0))


def _with_bigrams(pairs, *, vocab_size=20, width=6):
    """A StaticEncoder whose table holds the bigrams ``pairs`` (rows 1, 2, ... in order), random vectors."""
    encoder = StaticEncoder(vocab_size=vocab_size, embedding_dim=width, bigrams=len(pairs))
    keys = [first * vocab_size + second for first, second in pairs]
    table_keys, table_rows, placed = bigram_choice.fill_table(keys, size=encoder.bigram_keys.shape[0],
                                                        vocab_size=vocab_size, limit=len(pairs))
    assert placed.tolist() == list(range(len(pairs)))
    encoder.set_bigrams(table_keys, table_rows)
    with torch.no_grad():
        encoder.bigram_embedding.weight.normal_()
    return encoder


def test_bigrams_are_terms_of_the_mean_beside_the_tokens():
    encoder = _with_bigrams([(5, 6), (8, 9), (9, 4)])
    vectors, pair = encoder.embedding.weight.detach(), encoder.bigram_embedding.weight.detach()
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0], [6, 5, 7, 0]])
    with torch.no_grad():
        encoder.log_weight.weight[7] = np.log(3.0)  # token 7 weighs 3
        encoder.bigram_log_weight.weight[2] = np.log(0.5)  # bigram (8, 9) weighs 0.5
        out = encoder(ids, torch.tensor([3, 2, 3]))
    torch.testing.assert_close(out[0], (vectors[5] + vectors[6] + 3 * vectors[7] + pair[1]) / 6)
    # (8, 9) counts; (9, 0) is padding, not the stored bigram (9, 4) nor any other.
    torch.testing.assert_close(out[1], (vectors[8] + vectors[9] + 0.5 * pair[2]) / 2.5)
    torch.testing.assert_close(out[2], (vectors[6] + vectors[5] + 3 * vectors[7]) / 5)  # (6, 5) is not (5, 6)
    # The same texts unpadded, or padded further, give the same vectors.
    with torch.no_grad():
        torch.testing.assert_close(encoder(ids[:1, :3], torch.tensor([3])), out[:1])
        torch.testing.assert_close(encoder(torch.nn.functional.pad(ids, (0, 3)), torch.tensor([3, 2, 3])), out)


def test_gradients_reach_the_bigrams_of_the_batch_only():
    encoder = _with_bigrams([(5, 6), (8, 9)])
    encoder(torch.tensor([[5, 6, 7]]), torch.tensor([3])).sum().backward()
    grad = encoder.bigram_embedding.weight.grad
    assert grad[1].abs().sum() > 0 and grad[2].abs().sum() == 0 and grad[0].abs().sum() == 0
    assert encoder.bigram_log_weight.weight.grad[1].abs().sum() > 0


@pytest.mark.parametrize("size", [bigram_table.table_size(300), 331])  # roomy, and crowded: long probe runs
def test_transforms_numpy_lookup_finds_the_rows_the_network_finds(size):
    rng, vocab_size = np.random.default_rng(0), 50
    keys = rng.choice(vocab_size * vocab_size, 300, replace=False)
    table_keys, table_rows, placed = bigram_choice.fill_table(keys, size=size, vocab_size=vocab_size, limit=300)
    first, second = rng.integers(0, vocab_size, 3000), rng.integers(0, vocab_size, 3000)
    first[:300], second[:300] = np.divmod(keys, vocab_size)  # every stored bigram, then random ones
    found = bigram_choice.find(first, second, table_keys, table_rows, vocab_size)
    expected = bigram_table.lookup(*(torch.from_numpy(a) for a in (first, second, table_keys, table_rows)), vocab_size)
    np.testing.assert_array_equal(found, expected.numpy())
    assert np.array_equal(np.sort(found[:300][found[:300] > 0]), np.arange(1, len(placed) + 1))


def test_the_student_chooses_the_bigrams_two_texts_hold_the_most_first():
    prefix, suffix, size = (1,), (2,), 30
    sequences = [np.array([5, 6, 7]), np.array([5, 6]), np.array([9, 5, 6, 7]), np.array([8, 9])]
    count, keys, rows, chosen = distill.choose_bigrams(sequences, prefix=prefix, suffix=suffix, vocab_size=size)
    held = [(5, 6), (6, 7), (1, 5), (7, 2)]  # (5, 6) in 3 texts, the others in 2 (ordered by key below)
    expected = sorted(held, key=lambda pair: (-sum(_holds(s, pair, prefix, suffix) for s in sequences), pair))
    assert count == len(chosen) == len(expected)
    assert [tuple(divmod(int(key), size)) for key in chosen] == expected
    assert sorted(rows[rows > 0].tolist()) == list(range(1, count + 1))
    assert set(keys[keys >= 0].tolist()) == set(chosen.tolist())


def _holds(sequence, pair, prefix, suffix):
    ids = [*prefix, *sequence.tolist(), *suffix]
    return any((a, b) == pair for a, b in zip(ids, ids[1:]))


# --------------------------------------------------------------------------- fitting

def test_fit_leaves_a_static_encoder_and_no_pretrained_model(student, texts):
    encoder = student.net_.module_.encoder
    assert isinstance(encoder, StaticEncoder)
    assert not any(isinstance(m, PretrainedEncoder) for m in student.net_.module_.modules())
    assert not any(p.requires_grad for p in encoder.parameters())
    Z = student.transform(texts)
    assert Z.shape == (len(texts), 8) and np.isfinite(Z).all() and Z.std(axis=0).mean() > 1e-3
    decoded = student.inverse_transform(Z[:3])
    assert decoded.shape == (3,) and all(isinstance(t, str) for t in decoded)


def test_student_vectors_start_as_the_teachers_one_token_outputs(teacher):
    autoencoder = teacher.net_.module_
    vectors = distill.static_vectors(teacher.net_, autoencoder.encoder, teacher.vocabulary_.encoder_size)
    token = teacher.vocabulary_.decoder_tokens[7]  # a token of the training texts
    ids = torch.tensor([[*teacher.vocabulary_.encoder_prefix, token, *teacher.vocabulary_.encoder_suffix]])
    with torch.inference_mode():
        expected = autoencoder.encoder.eval()(ids, torch.tensor([ids.shape[1]]))[0]
    torch.testing.assert_close(vectors[token], expected, atol=1e-5, rtol=1e-5)


def test_the_student_counts_bigrams_that_start_as_the_teachers_two_token_outputs(student, teacher, texts):
    encoder, vocabulary = student.net_.module_.encoder, student.vocabulary_
    assert encoder.bigrams > 0 and network_spec(student).static_bigrams == encoder.bigrams
    assert int((encoder.bigram_rows > 0).sum()) == encoder.bigrams  # every row placed in the table
    # The start: the teacher's output for the two tokens alone, between its special tokens.
    sequences, _ = teacher._encode(texts)
    _, _, _, chosen = distill.choose_bigrams(sequences, prefix=vocabulary.encoder_prefix,
                                             suffix=vocabulary.encoder_suffix, vocab_size=vocabulary.encoder_size)
    autoencoder = teacher.net_.module_
    start = distill.bigram_vectors(teacher.net_, autoencoder.encoder, chosen[:3], vocabulary.encoder_size)
    for key, vector in zip(chosen[:3], start):
        ids = torch.tensor([[*vocabulary.encoder_prefix, *divmod(int(key), vocabulary.encoder_size),
                             *vocabulary.encoder_suffix]])
        with torch.inference_mode():
            expected = autoencoder.encoder.eval()(ids, torch.tensor([ids.shape[1]]))[0]
        torch.testing.assert_close(vector, expected, atol=1e-5, rtol=1e-5)


def network_spec(model):
    from sktextae import network

    return network.spec_of(model.net_)


def test_the_student_comes_nearer_the_teacher_than_its_start(teacher, texts):
    """Training moves the student's latent vectors towards the teacher's, from where the one-token
    vectors start them."""
    sequences, _ = teacher._encode(texts)
    targets = teacher.transform(texts)
    autoencoder = teacher.net_.module_
    start = StaticEncoder(vocab_size=teacher.vocabulary_.encoder_size, embedding_dim=autoencoder.encoder.output_dim,
                          vectors=distill.static_vectors(teacher.net_, autoencoder.encoder,
                                                         teacher.vocabulary_.encoder_size))
    import copy

    start_model = copy.deepcopy(teacher)
    start_model.net_.module_.encoder = start.requires_grad_(False)
    student = copy.deepcopy(teacher)
    distill.replace_with_static(student, sequences, n_valid=0, rng=np.random.RandomState(0), targets=targets)
    before = np.mean((start_model.transform(texts) - targets) ** 2)
    after = np.mean((student.transform(texts) - targets) ** 2)
    assert after < before


def test_reproducible_with_random_state(student, bert, corpus, texts):
    again = TextAutoencoder(encoder=bert, **STATIC).fit(list(corpus))
    np.testing.assert_array_equal(again.transform(texts), student.transform(texts))


@pytest.mark.parametrize("params, message", [
    ({"encoder": None, "architecture": "gru"}, "trained from scratch"),
    ({"decoder": "pretrained"}, "decoder='pretrained'"),
    ({"compile": True}, "compile=True"),
    ({"data_parallel": True}, "data_parallel=False"),
])
def test_combinations_that_cannot_work_are_refused(bert, texts, params, message):
    params = {"encoder": bert, **STATIC, **params}
    if params["encoder"] is None:
        params.pop("encoder")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TextAutoencoder(**params).fit(texts)


# --------------------------------------------------------------------------- saving, loading, exporting

def test_save_and_load_without_the_pretrained_folder(student, texts, tmp_path):
    folder = student.save(tmp_path / "model")
    assert not (folder / "encoder").exists()
    config = json.loads((folder / "config.json").read_text())
    assert config["network"]["static_encoder"] is True and config["pretrained_encoder"] is None
    loaded = sktextae.load(folder)
    assert isinstance(loaded.net_.module_.encoder, StaticEncoder)
    np.testing.assert_array_equal(loaded.transform(texts), student.transform(texts))
    np.testing.assert_array_equal(loaded.inverse_transform(loaded.transform(texts[:3])),
                                  student.inverse_transform(student.transform(texts[:3])))


def test_load_never_opens_the_pretrained_folder(student, texts, tmp_path, bert):
    """A static model's folder is self-contained: it loads in a process where the pretrained folder is gone."""
    folder = student.save(tmp_path / "model")
    expected = student.transform(texts[:4])
    np.save(tmp_path / "expected.npy", expected)
    code = (f"import sys, numpy as np, sktextae; sys.modules['transformers'] = None; "
            f"m = sktextae.load({str(folder)!r}); "
            f"np.testing.assert_array_equal(m.transform({texts[:4]!r}), np.load({str(tmp_path / 'expected.npy')!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr


def test_a_folder_of_format_8_loads_a_student_without_bigrams_and_tampered_rows_are_refused(student, texts, tmp_path):
    import shutil

    from test_persistence import edit_weights, rehash

    folder = student.save(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    assert config["network"]["static_bigrams"] == student.net_.module_.encoder.bigrams > 0
    # A row beyond the bigrams' table, from a file, is refused before any text reads it.
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    beyond = config["network"]["static_bigrams"] + 1
    edit_weights(tampered, lambda tensors: tensors["encoder.bigram_rows"].__setitem__(3, beyond))
    with pytest.raises(sktextae.ModelFileError, match="bigram_rows"):
        sktextae.load(tampered)
    # A count of bigrams without a static encoder is refused.
    rehash(tampered, lambda c: c["network"].update(static_encoder=False))
    with pytest.raises(sktextae.ModelFileError, match="static_bigrams"):
        sktextae.load(tampered)
    # Format 8's students counted no bigram: a folder of its weights loads as such a student.
    edit_weights(folder, lambda tensors: [tensors.pop(name) for name in list(tensors) if ".bigram_" in name])
    rehash(folder, lambda c: (c.update(format_version=8), c["network"].pop("static_bigrams")))
    old = sktextae.load(folder)
    assert isinstance(old.net_.module_.encoder, StaticEncoder) and old.net_.module_.encoder.bigrams == 0
    torch.testing.assert_close(old.net_.module_.encoder.embedding.weight, student.net_.module_.encoder.embedding.weight)
    assert not np.allclose(old.transform(texts), student.transform(texts), atol=1e-4)


def test_pickle_gives_identical_outputs(student, texts):
    copy = pickle.loads(pickle.dumps(student))
    np.testing.assert_array_equal(copy.transform(texts), student.transform(texts))


def test_export_onnx_matches_transform(student, texts, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from test_export import inputs_from_folder

    folder = student.save(tmp_path / "model")
    path = student.export_onnx(tmp_path / "encoder.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    latent, = session.run(["latent"], inputs_from_folder(folder, texts[:5]))
    np.testing.assert_allclose(latent, student.transform(texts[:5]), atol=1e-4, rtol=0)


def test_a_classifier_starts_from_a_static_autoencoder(student, texts, labels):
    classifier = TextAutoencoderClassifier(pretrained=student, max_epochs=2, random_state=0,
                                           validation_fraction=0, patience=None).fit(texts, labels)
    assert isinstance(classifier.net_.module_.autoencoder.encoder, StaticEncoder)
    assert classifier.predict(texts).shape == (len(texts),)


def test_partial_fit_trains_the_decoder_and_keeps_the_student(student, texts):
    import copy

    model = copy.deepcopy(student)
    before = {k: v.clone() for k, v in model.net_.module_.encoder.state_dict().items()}
    model.partial_fit(texts)
    after = model.net_.module_.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(model.net_.module_.encoder, StaticEncoder)


def test_partial_fit_of_a_loaded_static_model_needs_no_pretrained_folder(student, texts, tmp_path):
    """Trained further where the pretrained model is not: partial_fit never opens the encoder's folder."""
    folder = student.save(tmp_path / "model")
    code = (f"import sys, sktextae; sys.modules['transformers'] = None; "
            f"m = sktextae.load({str(folder)!r}); m.set_params(encoder={str(tmp_path / 'gone')!r}); "
            f"m.partial_fit({texts!r}); assert len(m.net_.history) == 1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr


def test_the_command_line_fits_encodes_and_decodes_a_static_model(bert, texts, tmp_path):
    from test_cli import run

    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    params = [arg for name, value in [("encoder", repr(bert)), ("static_encoder", "True"), ("latent_dim", "8"),
                                      ("decoder", "'gru'"), ("hidden_dim", "16"), ("max_epochs", "2"),
                                      ("max_length", "32"), ("random_state", "0")]
              for arg in ("--param", f"{name}={value}")]
    result = run("fit", "texts.txt", "-o", "model", *params, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = sktextae.load(tmp_path / "model")
    assert isinstance(model.net_.module_.encoder, StaticEncoder)
    result = run("encode", "model", "texts.txt", "-o", "vectors.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "vectors.npy"), model.transform(texts))
    result = run("decode", "model", "vectors.npy", "-o", "decoded.txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "decoded.txt").read_text(encoding="utf-8").splitlines()) == len(texts)


def test_a_fine_tuned_teacher_leaves_no_weight_in_the_optimizer(bert, corpus, texts):
    model = TextAutoencoder(encoder=bert, **{**STATIC, "freeze_encoder": False}).fit(list(corpus))
    assert isinstance(model.net_.module_.encoder, StaticEncoder)
    trained = {id(p) for p in model.net_.module_.parameters() if p.requires_grad}
    in_optimizer = {id(p) for group in model.net_.optimizer_.param_groups for p in group["params"]}
    assert in_optimizer == trained  # the bottleneck and decoder; none of the teacher's, none of the student's
    model.partial_fit(texts)
    assert model.transform(texts).shape == (len(texts), 8)


@pytest.mark.filterwarnings("ignore::sktextae.TruncationWarning")  # the long text is cut, as any text may be
def test_the_unpadded_path_gives_the_padded_paths_vectors(student, texts):
    """transform reads a static encoder's texts end to end, through the encoder and bottleneck folded into
    one table (nn.static.folded); the padded, batched forward that training, scoring and ONNX export use
    gives the same vectors."""
    module = student.net_.module_
    assert module.encoder.bigrams > 0
    texts = texts + ["", texts[0].split()[0], " ".join(texts[:3])]  # no token, one token, and a long text
    sequences, _ = student._encode(texts)
    padded = student._batched(sequences, lambda inputs, _: module.encode(inputs["input_ids"], inputs["lengths"]),
                              targets=False)
    np.testing.assert_allclose(student.transform(texts), padded, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(student.transform(texts[:1]), padded[:1], atol=1e-5, rtol=1e-5)
    # Read a few positions at a time (a text longer than that alone), the vectors are the same.
    from sktextae.inference import static_latents

    vocabulary = student.vocabulary_
    pieces = static_latents(student.net_, sequences, prefix=vocabulary.encoder_prefix,
                            suffix=vocabulary.encoder_suffix, positions_per_call=7)
    np.testing.assert_allclose(pieces, padded, atol=1e-5, rtol=1e-5)
    # The bigrams count in both: without them, the vectors differ.
    without = module.encoder.bigram_log_weight.weight.detach().clone()
    try:
        with torch.no_grad():
            module.encoder.bigram_log_weight.weight.fill_(-80.0)  # every bigram weighs nothing
        assert not np.allclose(student.transform(texts), padded, atol=1e-3)
    finally:
        with torch.no_grad():
            module.encoder.bigram_log_weight.weight.copy_(without)


def test_the_folded_table_follows_the_weights(bert, corpus, texts):
    model = TextAutoencoder(encoder=bert, **STATIC).fit(list(corpus))
    before = model.transform(texts)
    model.partial_fit(texts)  # trains the bottleneck that transform's table is folded with
    module = model.net_.module_
    sequences, _ = model._encode(texts)
    padded = model._batched(sequences, lambda inputs, _: module.encode(inputs["input_ids"], inputs["lengths"]),
                            targets=False)
    after = model.transform(texts)
    assert not np.allclose(after, before, atol=1e-4)
    np.testing.assert_allclose(after, padded, atol=1e-5, rtol=1e-5)
