"""save() and load(): round trips of every estimator class and architecture (in this process and a fresh
one), a pretrained encoder whose folder is gone, every kind of damaged folder, no unpickling, and the
version record of pickles."""

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback

import sktextae
from sktextae import (ModelFileError, ModelVersionWarning, TextAutoencoder, TextAutoencoderClassifier,
                      TextAutoencoderRegressor)
from sktextae import persistence, saved_config
from sktextae.tokenization import SPECIAL_TOKENS
from conftest import LABELS, TEXTS, TINY_PARAMS

FIT = {**TINY_PARAMS, "max_epochs": 1}
STRING_LABELS = np.array(["cooking", "computing"], dtype=object)[list(LABELS)]


def fitted_model(kind):
    texts = list(TEXTS)
    if kind == "classifier":
        return TextAutoencoderClassifier(**FIT).fit(texts, STRING_LABELS)
    if kind == "classifier-int":
        return TextAutoencoderClassifier(**FIT).fit(texts, np.array(LABELS))
    if kind == "regressor":
        return TextAutoencoderRegressor(**FIT).fit(texts, np.arange(len(texts), dtype=float))
    if kind == "regressor-2d":
        return TextAutoencoderRegressor(**FIT).fit(texts, np.c_[np.arange(len(texts)), -np.arange(len(texts))] * 1.0)
    if kind == "conv-gru":
        return TextAutoencoder(**{**FIT, "encoder": "conv", "decoder": "gru"}).fit(texts)
    if kind == "variational":
        return TextAutoencoder(**{**FIT, "variational": True}).fit(texts)
    return TextAutoencoder(**{**FIT, "architecture": kind}).fit(texts)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A fitted gru TextAutoencoder and the folder it was saved to (copy it before damaging it)."""
    model = fitted_model("gru")
    folder = tmp_path_factory.mktemp("saved") / "model"
    model.save(folder)
    return model, folder


@pytest.fixture
def copy_of(saved, tmp_path):
    copied = tmp_path / "copy"
    shutil.copytree(saved[1], copied)
    return copied


def assert_same_outputs(original, loaded):
    texts = list(TEXTS)
    Z = original.transform(texts)
    np.testing.assert_array_equal(loaded.transform(texts), Z)
    np.testing.assert_array_equal(loaded.inverse_transform(Z), original.inverse_transform(Z))
    np.testing.assert_array_equal(loaded.score_samples(texts), original.score_samples(texts))
    if isinstance(original, TextAutoencoderClassifier):
        np.testing.assert_array_equal(loaded.predict(texts), original.predict(texts))
        np.testing.assert_array_equal(loaded.predict_proba(texts), original.predict_proba(texts))
        assert loaded.predict(texts).dtype == original.predict(texts).dtype
        assert loaded.score(texts, original.predict(texts)) == original.score(texts, original.predict(texts))
    elif isinstance(original, TextAutoencoderRegressor):
        np.testing.assert_array_equal(loaded.predict(texts), original.predict(texts))
        assert loaded.predict(texts).dtype == original.predict(texts).dtype
        y = original.predict(texts)
        assert loaded.score(texts, y) == original.score(texts, y)
    else:
        assert loaded.score(texts) == original.score(texts)


def rehash(folder, edit=None):
    """Edit config.json with ``edit(config)``, then recompute every hash, so that only deeper checks remain."""
    config = json.loads((folder / "config.json").read_text())
    if edit is not None:
        edit(config)
    config["files"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() if (folder / name).is_file()
                       else digest for name, digest in config["files"].items()}
    config["config_sha256"] = saved_config.config_checksum(config)
    (folder / "config.json").write_text(json.dumps(config))


# --------------------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("kind", ["gru", "bow", "transformer", "conv-gru", "variational", "classifier",
                                  "classifier-int", "regressor", "regressor-2d"])
def test_round_trip_gives_identical_outputs(kind, tmp_path):
    original = fitted_model(kind)
    original.save(tmp_path / "model")
    for loaded in (sktextae.load(tmp_path / "model"), type(original).load(tmp_path / "model", device="cpu")):
        assert type(loaded) is type(original)
        params = original.get_params(deep=False)
        assert loaded.get_params(deep=False) == params
        assert loaded.device_ == "cpu" and loaded.max_length_ == original.max_length_
        assert loaded.bag_size_ == original.bag_size_ and loaded.n_truncated_ == original.n_truncated_
        if hasattr(original, "classes_"):
            assert loaded.classes_.dtype == original.classes_.dtype
            np.testing.assert_array_equal(loaded.classes_, original.classes_)
        assert_same_outputs(original, loaded)
    assert_same_outputs(original, pickle.loads(pickle.dumps(loaded)))  # a loaded model pickles as any other


def test_loaded_model_trains_on_and_pickles(saved):
    original, folder = saved
    loaded = TextAutoencoder.load(folder)
    assert loaded.vocabulary_.decoder_size == original.vocabulary_.decoder_size
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(loaded)).transform(list(TEXTS)),
                                  original.transform(list(TEXTS)))
    loaded.partial_fit(list(TEXTS))  # a fresh optimizer: the saved one is not kept
    assert loaded.transform(list(TEXTS)).shape == (len(TEXTS), 8)


def test_fresh_process_loads_the_same_vectors(saved, tmp_path):
    original, folder = saved
    np.save(tmp_path / "expected.npy", original.transform(list(TEXTS)))
    code = textwrap.dedent(f"""
        import sys, numpy as np, sktextae
        texts = {list(TEXTS)!r}
        Z = sktextae.load({str(folder)!r}).transform(texts)
        print("identical" if np.array_equal(Z, np.load({str(tmp_path / "expected.npy")!r})) else "different")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "identical"


def test_pretrained_encoder_loads_without_its_folder(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from test_pretrained import TINY, save_tiny_bert

    bert = tmp_path / "bert"
    bert.mkdir()
    save_tiny_bert(bert, TEXTS)
    original = TextAutoencoder(encoder=str(bert), **TINY).fit(list(TEXTS))
    original.save(tmp_path / "model")
    assert (tmp_path / "model" / "encoder" / "config.json").is_file()
    shutil.rmtree(bert)
    monkeypatch.setattr(sktextae.pretrained, "_LOADED", {})  # nothing cached from the fit either
    loaded = sktextae.load(tmp_path / "model")
    assert loaded.vocabulary_.decoder_tokens is not None
    np.testing.assert_array_equal(loaded.vocabulary_.decoder_tokens, original.vocabulary_.decoder_tokens)
    assert_same_outputs(original, loaded)


def test_supervised_from_pretrained_stores_none_and_notes_it(tmp_path):
    base = fitted_model("gru")
    classifier = TextAutoencoderClassifier(**{**FIT, "latent_dim": 64}, pretrained=base).fit(list(TEXTS), STRING_LABELS)
    classifier.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["params"]["pretrained"] is None and config["notes"]["pretrained_given"] is True
    loaded = TextAutoencoderClassifier.load(tmp_path / "model")
    assert loaded.pretrained is None and loaded.get_params()["latent_dim"] == 64  # as given; the network is base's
    assert loaded.transform(list(TEXTS)).shape == (len(TEXTS), 8)
    assert_same_outputs(classifier, loaded)


def test_set_output_survives(tmp_path):
    pd = pytest.importorskip("pandas")
    model = fitted_model("bow").set_output(transform="pandas")
    model.save(tmp_path / "model")
    assert isinstance(sktextae.load(tmp_path / "model").transform(list(TEXTS)), pd.DataFrame)


def test_loading_never_unpickles(saved, monkeypatch):
    original, folder = saved

    def refuse(*args, **kwargs):
        raise AssertionError("loading unpickled something")

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    assert_same_outputs(original, sktextae.load(folder))


# ------------------------------------------------------------------------------------------- saving

def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        TextAutoencoder().save(tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_save_refuses_to_overwrite(saved, tmp_path):
    original, _ = saved
    original.save(tmp_path / "model")
    with pytest.raises(ValueError, match="overwrite=True"):
        original.save(tmp_path / "model")
    original.save(tmp_path / "model", overwrite=True)
    sktextae.load(tmp_path / "model")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"not a model folder that save\(\) wrote"):
        original.save(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    original.save(tmp_path / "empty")  # an empty folder is fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        original.save(tmp_path / "file")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "file", "model", "other"]


def test_interrupted_save_leaves_nothing(saved, tmp_path, monkeypatch):
    original, _ = saved

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save", crash)  # Ctrl-C while the weights are written
    with pytest.raises(KeyboardInterrupt):
        original.save(tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_callbacks_and_random_state_instance_are_dropped_with_a_note(tmp_path):
    model = TextAutoencoder(**{**FIT, "callbacks": [("noop", Callback())]}).fit(list(TEXTS))
    model.set_params(random_state=np.random.RandomState(0))
    with pytest.warns(UserWarning, match="callbacks, random_state"):
        model.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert set(config["notes"]["dropped_params"]) == {"callbacks", "random_state"}
    loaded = sktextae.load(tmp_path / "model")
    assert loaded.callbacks is None and loaded.random_state is None
    assert_same_outputs(model, loaded)


def test_config_records_versions_and_hashes(saved):
    config = json.loads((saved[1] / "config.json").read_text())
    assert config["format_version"] == persistence.FORMAT_VERSION == 9
    assert config["estimator"] == "TextAutoencoder"
    assert config["versions"]["sktextae"] == sktextae.__version__
    assert config["versions"]["torch"] == torch.__version__
    assert set(config["files"]) == {"tokenizer.json", "model.safetensors"}


def test_a_folder_of_format_2_loads_without_static_encoder(saved, copy_of):
    def as_format_2(config):
        config.update(format_version=2)
        del config["params"]["static_encoder"], config["network"]["static_encoder"]

    rehash(copy_of, as_format_2)
    loaded = sktextae.load(copy_of)
    assert loaded.static_encoder is False
    assert_same_outputs(saved[0], loaded)


def test_a_folder_of_format_3_loads_without_data_parallel(saved, copy_of):
    def as_format_3(config):
        config.update(format_version=3)
        del config["params"]["data_parallel"]

    rehash(copy_of, as_format_3)
    loaded = sktextae.load(copy_of)
    assert loaded.data_parallel is False
    assert_same_outputs(saved[0], loaded)


def test_a_folder_of_format_4_keeps_its_tokenizer_settings(saved, copy_of):
    # Before "auto", a folder held the values themselves; they load as given and a refit keeps them.
    def as_format_4(config):
        config.update(format_version=4)
        config["params"].update(tokenizer="bpe", vocab_size=300, lowercase=False, max_length=128)

    rehash(copy_of, as_format_4)
    loaded = sktextae.load(copy_of)
    assert (loaded.tokenizer, loaded.vocab_size, loaded.lowercase, loaded.max_length) == ("bpe", 300, False, 128)
    assert_same_outputs(saved[0], loaded)


def test_a_tfidf_bag_of_words_keeps_its_idf_and_a_folder_of_format_5_reads_as_the_mean_encoder(tmp_path):
    model = TextAutoencoder(**{**FIT, "architecture": "bow"}).fit(list(TEXTS))
    assert model.net_.module_.encoder.weighting == "tfidf"
    folder = model.save(tmp_path / "model")
    loaded = sktextae.load(folder)
    torch.testing.assert_close(loaded.net_.module_.encoder.idf, model.net_.module_.encoder.idf)
    assert_same_outputs(model, loaded)
    # A folder of format 5 holds no bow_weighting: it is the mean encoder, which has no idf to read.
    old = tmp_path / "format5"
    shutil.copytree(folder, old)
    rehash(old, lambda config: (config.update(format_version=5), [config["network"].pop(key)
                                                                   for key in ("bow_weighting", "bow_counts")]))
    with pytest.raises(ModelFileError, match="idf"):
        sktextae.load(old)


def edit_weights(folder, edit):
    """Rewrite model.safetensors as ``edit(tensors)`` leaves its dict, then rehash the folder."""
    import safetensors.torch

    tensors = safetensors.torch.load_file(str(folder / "model.safetensors"))
    edit(tensors)
    safetensors.torch.save_file(tensors, str(folder / "model.safetensors"))
    rehash(folder)


def test_a_bag_of_words_counts_words_and_bigrams_and_older_folders_count_as_they_were_fitted(tmp_path):
    texts = [f"{text}\n({text.split()[-1]})!" for text in TEXTS]  # words after a line break or a bracket, and marks
    model = TextAutoencoder(**{**FIT, "architecture": "bow", "tokenizer": "word", "vocab_size": "auto"}).fit(texts)
    encoder = model.net_.module_.encoder
    # Words of two letters or digits or more, as TfidfVectorizer reads them: marks and single letters count as nothing.
    np.testing.assert_array_equal(encoder.terms.numpy(), model.vocabulary_.bag_terms(min_word_chars=2))
    assert "terms" not in encoder.state_dict()  # no weight: the tokenizer gives it
    assert (encoder.terms == 0).sum() > len(SPECIAL_TOKENS) - 1
    # Two tokens share a term: a word after a line break (or a bracket) and after a space.
    assert len(set(encoder.terms.tolist())) < len(encoder.terms) - (encoder.terms == 0).sum() + 1
    assert encoder.bigrams == encoder.embedding.num_embeddings and (encoder.bigram_rows > 0).any()
    folder = model.save(tmp_path / "model")
    assert json.loads((folder / "config.json").read_text())["network"]["bow_counts"] == "bigrams"
    loaded = sktextae.load(folder)
    torch.testing.assert_close(loaded.net_.module_.encoder.terms, encoder.terms)
    for name in ("bigram_keys", "bigram_rows", "bigram_idf"):
        torch.testing.assert_close(getattr(loaded.net_.module_.encoder, name), getattr(encoder, name))
    assert_same_outputs(model, loaded)
    # A row beyond the bigrams' table, from a file, is refused before any text reads it.
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    edit_weights(tampered, lambda tensors: tensors["encoder.bigram_rows"].__setitem__(0, encoder.bigrams + 1))
    with pytest.raises(ModelFileError, match="bigram_rows"):
        sktextae.load(tampered)
    # Format 7 counted words and no bigram: a folder of its weights loads as that encoder.
    edit_weights(folder, lambda tensors: [tensors.pop(name) for name in list(tensors) if ".bigram_" in name])
    rehash(folder, lambda config: (config.update(format_version=7), config["network"].update(bow_counts="words")))
    words = sktextae.load(folder)
    assert words.net_.module_.encoder.bigrams == 0
    np.testing.assert_array_equal(words.net_.module_.encoder.terms.numpy(), model.vocabulary_.bag_terms())
    assert not np.allclose(words.transform(texts), model.transform(texts))
    # Format 6 counted every token: the same weights load as that encoder, which reads the texts otherwise.
    rehash(folder, lambda config: (config.update(format_version=6), config["network"].pop("bow_counts")))
    old = sktextae.load(folder)
    assert old.net_.module_.encoder.terms is None
    assert not np.allclose(old.transform(texts), words.transform(texts))


# ------------------------------------------------------------------------------------------- damage

def flip_a_byte(file):
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


def truncate(file):
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def pickle_instead(file):
    with open(file, "wb") as handle:
        pickle.dump({"weights": [1, 2, 3]}, handle)


DAMAGE = {
    "missing config": (lambda f: (f / "config.json").unlink(), "config.json", "missing"),
    "missing weights": (lambda f: (f / "model.safetensors").unlink(), "model.safetensors", "missing"),
    "missing tokenizer": (lambda f: (f / "tokenizer.json").unlink(), "tokenizer.json", "missing"),
    "flipped weights": (lambda f: flip_a_byte(f / "model.safetensors"), "model.safetensors", "SHA-256"),
    "flipped tokenizer": (lambda f: flip_a_byte(f / "tokenizer.json"), "tokenizer.json", "SHA-256"),
    "truncated weights": (lambda f: truncate(f / "model.safetensors"), "model.safetensors", "SHA-256"),
    "truncated weights, rehashed": (lambda f: (truncate(f / "model.safetensors"), rehash(f)), "model.safetensors",
                                    "not a readable safetensors"),
    "pickle as weights": (lambda f: (pickle_instead(f / "model.safetensors"), rehash(f)), "model.safetensors",
                          "not a readable safetensors"),
    "bad tokenizer, rehashed": (lambda f: ((f / "tokenizer.json").write_text("{}"), rehash(f)), "tokenizer.json",
                                "not a tokenizer"),
    "edited config": (lambda f: (f / "config.json").write_text(
        (f / "config.json").read_text().replace('"latent_dim": 8', '"latent_dim": 9')), "config.json", "edited"),
    "config not JSON": (lambda f: (f / "config.json").write_text("{not json"), "config.json", "not JSON"),
    "config missing a field": (lambda f: rehash(f, lambda c: c.pop("fitted")), "config.json", "missing fields"),
    "config unknown parameter": (lambda f: rehash(f, lambda c: c["params"].update(latent_dimension=3)), "config.json",
                                 "latent_dimension"),
    "config invalid parameter": (lambda f: rehash(f, lambda c: c["params"].update(latent_dim=-1)), "config.json",
                                 "latent_dim"),
    "shapes disagree": (lambda f: rehash(f, lambda c: c["network"].update(latent_dim=9)), "model.safetensors",
                        "shape|\\(9"),
    "class os.system": (lambda f: rehash(f, lambda c: c.update(estimator="os.system")), "config.json", "os.system"),
    "newer format": (lambda f: rehash(f, lambda c: c.update(format_version=saved_config.FORMAT_VERSION + 1)),
                     "config.json", "newer"),
    "unknown bow weighting": (lambda f: rehash(f, lambda c: c["network"].update(bow_weighting="max")), "config.json",
                              "bow_weighting must be one of"),
    "unknown bow counts": (lambda f: rehash(f, lambda c: c["network"].update(bow_counts="letters")), "config.json",
                           "bow_counts must be one of"),
    "words of the mean bow": (lambda f: rehash(f, lambda c: c["network"].update(bow_weighting="mean")), "config.json",
                              "needs bow_weighting 'tfidf'"),
    "extra weights file entry": (lambda f: rehash(f, lambda c: c["files"].update({"../x": "0" * 64})), "config.json",
                                 "files"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_folder_raises_model_file_error(case, copy_of):
    damage, file, message = DAMAGE[case]
    damage(copy_of)
    with pytest.raises(ModelFileError, match=message) as error:
        sktextae.load(copy_of)
    assert file in str(error.value)
    assert isinstance(error.value, ValueError)


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFileError, match="no such folder"):
        sktextae.load(tmp_path / "nowhere")


def test_class_load_refuses_another_class(saved):
    with pytest.raises(ModelFileError, match="holds a TextAutoencoder, not a TextAutoencoderClassifier"):
        TextAutoencoderClassifier.load(saved[1])
    with pytest.raises(ModelFileError):
        TextAutoencoderRegressor.load(saved[1])


# ------------------------------------------------------------------------------------------- pickles

def test_pickle_records_the_version(saved):
    original, _ = saved
    state = original.__getstate__()
    assert state["_sktextae_version"] == sktextae.__version__
    assert "_sktextae_version" not in original.__dict__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restored = pickle.loads(pickle.dumps(original))
    assert "_sktextae_version" not in restored.__dict__


def test_pickle_from_another_version_warns(saved):
    original, _ = saved
    state = original.__getstate__()
    state["_sktextae_version"] = "0.1.0"
    restored = TextAutoencoder.__new__(TextAutoencoder)
    with pytest.warns(ModelVersionWarning, match="0.1.0"):
        restored.__setstate__(state)
    np.testing.assert_array_equal(restored.transform(list(TEXTS)), original.transform(list(TEXTS)))


def test_pickle_missing_needed_fields_is_refused(saved):
    original, _ = saved
    state = original.__getstate__()
    del state["_sktextae_version"], state["inference_batch_size"], state["bag_size_"]
    with pytest.raises(ModelFileError, match="inference_batch_size"):
        TextAutoencoder.__new__(TextAutoencoder).__setstate__(state)


# ------------------------------------------------------------------------------------------- devices

def test_compiled_model_saves_the_uncompiled_weights(fast_compile, tmp_path):
    compiled = TextAutoencoder(**{**FIT, "compile": True}).fit(list(TEXTS))
    assert hasattr(compiled.net_.module_, "_orig_mod")
    compiled.save(tmp_path / "model")
    from safetensors.torch import load_file

    assert not any(name.startswith("_orig_mod") for name in load_file(str(tmp_path / "model" / "model.safetensors")))
    loaded = sktextae.load(tmp_path / "model")
    assert_same_outputs(compiled, loaded)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["gru", "transformer", "classifier"])
def test_cuda_round_trip_and_device_choice(kind, tmp_path):
    original = fitted_model(kind)  # device="auto": on the GPU, bf16 where supported
    assert original.device_.startswith("cuda")
    original.save(tmp_path / "model")
    loaded = sktextae.load(tmp_path / "model")
    assert loaded.device_ == "cuda" and loaded.net_.use_bf16 == original.net_.use_bf16
    assert_same_outputs(original, loaded)
    on_cpu = sktextae.load(tmp_path / "model", device="cpu")
    assert on_cpu.device_ == "cpu" and next(on_cpu.net_.module_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(on_cpu.transform(list(TEXTS)), original.transform(list(TEXTS)), atol=0.05)
