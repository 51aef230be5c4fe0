"""Saved model folders as untrusted input: crafted folders (hashes recomputed, as an attacker would)
end in ``ModelFileError`` and nothing else, under a socket guard; ``save`` and ``export_onnx`` never
replace what the package did not write; the folders saved by the previous code load unchanged."""

import copy
import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sktextae
from sktextae import ModelFileError, TextAutoencoder
from sktextae.files import json_sha256
from conftest import TEXTS, TINY_PARAMS

os.environ["HF_HUB_OFFLINE"] = "1"
FIXTURES = pathlib.Path(__file__).parent / "data" / "saved_models"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test here fails if anything tries to open a connection or resolve a host name."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"a network connection was attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield
    assert attempts == []


@pytest.fixture(scope="module")
def fitted():
    return TextAutoencoder(**TINY_PARAMS).fit(list(TEXTS))


@pytest.fixture
def folder(fitted, tmp_path):
    return fitted.save(tmp_path / "model")


def read_config(folder):
    return json.loads((folder / "config.json").read_text())


def resign(folder, config):
    """Write ``config`` with its checksums recomputed: a SHA-256 list is no signature."""
    if isinstance(config.get("files"), dict):
        config["files"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                           if (folder / name).is_file() else digest for name, digest in config["files"].items()}
    config["config_sha256"] = json_sha256({key: value for key, value in config.items() if key != "config_sha256"})
    (folder / "config.json").write_text(json.dumps(config))


def edited(folder, change):
    config = read_config(folder)
    change(config)
    resign(folder, config)
    return folder


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.mark.parametrize("name", ["autoencoder_gru", "classifier_bow", "regressor_gru"])
def test_folders_saved_by_the_previous_code_load_unchanged(name, tmp_path):
    expected = json.loads((FIXTURES / f"{name}.expected.json").read_text())
    model = sktextae.load(FIXTURES / name)
    # Equal up to float32 rounding: the last bit of a sum can move with the machine's CPU kernels or the
    # libraries' builds (it did, by 1.2e-7, between two CI runs of the same code); a changed model moves more.
    np.testing.assert_allclose(model.transform(expected["texts"]), np.array(expected["transform"], np.float32),
                               rtol=1e-5, atol=1e-6)
    if "predict" in expected:
        predicted, saved = model.predict(expected["texts"]), np.array(expected["predict"])
        if saved.dtype.kind == "f":  # the regressor's values, to the same rounding as the vectors
            np.testing.assert_allclose(predicted, saved, rtol=1e-5, atol=1e-6)
        else:  # the classifier's labels, exactly
            np.testing.assert_array_equal(predicted, saved)
    else:
        # Decoded as the code that saved them decoded: without the guard against repeated 3-grams.
        Z = model.transform(expected["texts"])
        assert model.inverse_transform(Z, no_repeat_ngram_size=0).tolist() == expected["inverse_transform"]
    # Format 1 had no decode_length_: decoding ran up to max_length_, as it still does for these.
    assert model.decode_length_ == model.max_length_
    again = model.save(tmp_path / "again")
    for file in ("tokenizer.json", "model.safetensors"):
        assert (again / file).read_bytes() == (FIXTURES / name / file).read_bytes(), file
    old, new = (json.loads((folder / "config.json").read_text()) for folder in (FIXTURES / name, again))
    assert (old["format_version"], new["format_version"]) == (1, 9)  # 5 and 8 changed no field of these
    assert new["fitted"].pop("decode_length_") == old["fitted"]["max_length_"]
    # Format 3 added static_encoder: false for every folder written before it.
    assert new["params"].pop("static_encoder") is False and new["network"].pop("static_encoder") is False
    # Format 4 added the parameter data_parallel: false for every folder written before it.
    assert new["params"].pop("data_parallel") is False
    # Format 6 added the network's bow_weighting: "mean", the bag of words of every folder written before it.
    assert new["network"].pop("bow_weighting") == "mean"
    # Format 7 added the network's bow_counts: "tokens", what every bag of words counted before it.
    assert new["network"].pop("bow_counts") == "tokens"
    # Format 9 added the network's static_bigrams: 0, the bigrams of every static encoder before it.
    assert new["network"].pop("static_bigrams") == 0
    for config in (old, new):
        for key in ("format_version", "config_sha256", "files", "versions"):
            config.pop(key)
    assert old == new  # the rest is written exactly as before


def test_pretrained_folder_saved_by_the_previous_code_loads_unchanged():
    pytest.importorskip("transformers")
    expected = json.loads((FIXTURES / "autoencoder_pretrained.expected.json").read_text())
    model = sktextae.load(FIXTURES / "autoencoder_pretrained")
    np.testing.assert_allclose(model.transform(expected["texts"]), np.array(expected["transform"]), atol=1e-6)
    Z = model.transform(expected["texts"])
    assert model.inverse_transform(Z, no_repeat_ngram_size=0).tolist() == expected["inverse_transform"]


# ---------------------------------------------------------------------------------------------- crafted configs

CRAFTED = {
    "max_length_ huge": lambda c: c["fitted"].update(max_length_=10**18),
    "max_length_ zero": lambda c: c["fitted"].update(max_length_=0),
    "max_length_ disagrees with the network": lambda c: c["fitted"].update(max_length_=5),
    "bag_size_ huge": lambda c: c["fitted"].update(bag_size_=10**9),
    "callbacks name a function": lambda c: c["params"].update(callbacks=["os.system"]),
    "pretrained given": lambda c: c["params"].update(pretrained="os.system"),
    "unknown parameter": lambda c: c["params"].update(surprise=1),
    "random_state a string": lambda c: c["params"].update(random_state="os"),
    "output_config invalid": lambda c: c.update(output_config={"__dict__": [["transform", "os.system"]]}),
    "output_config untagged": lambda c: c.update(output_config={"transform": "pandas"}),
    "latent_dim disagrees with the weights": lambda c: c["network"].update(latent_dim=64),
    "hidden_dim huge": lambda c: c["network"].update(hidden_dim=20_000_000),
    "num_layers huge": lambda c: c["network"].update(num_layers=48),
    "vocab size disagrees": lambda c: c["network"].update(vocab_size=301),
    "decoder unknown": lambda c: c["network"].update(decoder="os.system"),
    "encoder unknown": lambda c: c["network"].update(encoder="someone/model"),
    "task of another class": lambda c: c["network"].update(task="classification", n_outputs=2),
    "dropout out of range": lambda c: c["network"].update(dropout=7),
    "static_encoder a string": lambda c: c["network"].update(static_encoder="yes"),
    "static_encoder of a from-scratch encoder": lambda c: c["network"].update(static_encoder=True),
    "deeply nested parameter": lambda c: c["params"].update(dropout=json.loads("[" * 900 + "]" * 900)),
    "prefix id outside the vocabulary": lambda c: c["vocabulary"].update(encoder_prefix=[10**9]),
    "decoder tokens without a pretrained encoder": lambda c: c["vocabulary"].update(decoder_tokens=[1, 2]),
    "notes retyped": lambda c: c.update(notes=[]),
    "versions retyped": lambda c: c.update(versions={"torch": 5}),
    "unknown top-level field": lambda c: c.update(extra=1),
    "estimator an import path": lambda c: c.update(estimator="os.system"),
    "files list another file": lambda c: c["files"].update({"../../etc/passwd": "0" * 64}),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_config_is_a_model_file_error(folder, case):
    edited(folder, CRAFTED[case])
    with pytest.raises(ModelFileError, match="config.json"):
        sktextae.load(folder)


def test_deeply_nested_config_is_a_model_file_error(folder):
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFileError, match="config.json"):
        sktextae.load(folder)


def test_huge_network_in_a_tiny_folder_is_refused_before_allocating(folder):
    """hidden_dim=20,000,000 asks for tens of GB: the shapes are checked against the weights file on the
    meta device first, so loading fails at once, in a subprocess whose peak memory is measured."""
    edited(folder, lambda c: c["network"].update(hidden_dim=20_000_000))
    script = textwrap.dedent(f"""
        import resource, sktextae
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            sktextae.load({str(folder)!r})
        except sktextae.ModelFileError as error:
            print("refused", "hidden" in str(error) or "tensor" in str(error))
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = result.stdout.split()
    assert lines[:2] == ["refused", "True"], result.stderr[-2000:]
    assert int(lines[2]) < 300, f"loading grew the peak memory by {lines[2]} MB"


def test_weights_with_shapes_unlike_the_config_are_refused(folder, tmp_path, fitted):
    other = TextAutoencoder(**{**TINY_PARAMS, "hidden_dim": 24}).fit(list(TEXTS)).save(tmp_path / "other")
    shutil.copy(other / "model.safetensors", folder / "model.safetensors")
    resign(folder, read_config(folder))
    with pytest.raises(ModelFileError, match="model.safetensors: tensor"):
        sktextae.load(folder)


def test_truncated_weights_header_is_refused(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes((10**12).to_bytes(8, "little") + data[8:])
    resign(folder, read_config(folder))
    with pytest.raises(ModelFileError, match="model.safetensors"):
        sktextae.load(folder)


MUTATIONS = st.sampled_from(["drop", "none", "string", "huge", "negative", "nest", "list", "float"])


def _mutate(value, how):
    return {"none": None, "string": "os.system", "huge": 10**18, "negative": -5, "nest": {"__dict__": [[value]]},
            "list": [value] * 3, "float": 1e308}[how]


def _paths(config, prefix=()):
    for key, value in config.items():
        if key in ("config_sha256",):
            continue
        yield (*prefix, key)
        if isinstance(value, dict) and key != "files":
            yield from _paths(value, (*prefix, key))


@settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutated_field_loads_or_is_a_model_file_error(folder, data):
    """Drop, retype, nest or enlarge any field of a valid config.json, re-sign it, and load: the result is
    a model or a ModelFileError, never another exception."""
    original = read_config(folder)
    config = copy.deepcopy(original)
    path = data.draw(st.sampled_from(sorted(_paths(config))))
    how = data.draw(st.one_of(st.just("drop"), MUTATIONS))
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    if how == "drop":
        del parent[path[-1]]
    else:
        parent[path[-1]] = _mutate(parent[path[-1]], how)
    resign(folder, config)
    try:
        model = sktextae.load(folder)
    except ModelFileError as error:
        assert "config.json" in str(error) or "model.safetensors" in str(error) or "tokenizer.json" in str(error)
    else:  # a harmless change (a parameter that only a later fit reads): the model still works
        assert model.transform(["a text"]).shape == (1, model.net_.module_.latent_dim)
    finally:
        resign(folder, original)


# ---------------------------------------------------------------------------------------------- load(device=...)

@pytest.mark.parametrize("device, error, words", [("mps", ValueError, "CPU or on CUDA"),
                                                  ("meta", ValueError, "CPU or on CUDA"),
                                                  ("nonsense", ValueError, "not a torch device"),
                                                  (None, TypeError, "device must be a str")])
def test_load_device_errors_name_the_device_not_the_folder(folder, device, error, words):
    with pytest.raises(error, match=words) as raised:
        sktextae.load(folder, device=device)
    assert not isinstance(raised.value, ModelFileError) and "config.json" not in str(raised.value)


# ---------------------------------------------------------------------------------------------- writes

def test_overwrite_never_replaces_a_hugging_face_model_folder(fitted, tmp_path):
    hf = tmp_path / "bert"
    hf.mkdir()
    (hf / "config.json").write_text('{"model_type": "bert"}')
    (hf / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(ValueError, match="not a model folder that save"):
        fitted.save(hf, overwrite=True)
    assert sorted(p.name for p in hf.iterdir()) == ["config.json", "model.safetensors"]
    assert (hf / "model.safetensors").read_bytes() == b"weights"


def test_overwrite_never_replaces_a_folder_with_files_of_the_user(fitted, folder):
    (folder / "README.md").write_text("my notes")
    with pytest.raises(ValueError, match="README.md"):
        fitted.save(folder, overwrite=True)
    assert (folder / "README.md").read_text() == "my notes"
    (folder / "README.md").unlink()
    fitted.save(folder, overwrite=True)  # a saved model alone is replaced
    sktextae.load(folder)


def test_overwrite_refuses_a_symbolic_link_and_leaves_nothing_behind(fitted, folder, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(folder, target_is_directory=True)
    with pytest.raises(ValueError, match="symbolic link"):
        fitted.save(link, overwrite=True)
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["link", "model"]


def test_save_into_the_current_folder_is_refused(fitted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in (".", "", str(tmp_path.parent)):
        with pytest.raises(ValueError):
            fitted.save(path, overwrite=True)
    assert list(tmp_path.iterdir()) == []


def test_saved_files_keep_the_umask_mode(fitted, tmp_path):
    old = os.umask(0o022)
    try:
        folder = fitted.save(tmp_path / "model")
        fitted.save(folder, overwrite=True)
    finally:
        os.umask(old)
    for file in folder.iterdir():
        assert file.stat().st_mode & 0o777 == 0o644, file.name
    assert folder.stat().st_mode & 0o777 == 0o755


def test_export_onnx_checks_its_target_before_exporting(fitted, tmp_path, monkeypatch):
    pytest.importorskip("onnxscript")
    import torch

    def never(*args, **kwargs):
        raise AssertionError("the export ran before the target was checked")

    monkeypatch.setattr(torch.onnx, "export", never)
    (tmp_path / "folder").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="is a folder"):
        fitted.export_onnx(tmp_path / "folder")
    for path in ("", "."):
        with pytest.raises(ValueError, match="name"):
            fitted.export_onnx(path)
    with pytest.raises(ValueError, match="does not exist"):
        fitted.export_onnx(tmp_path / "missing" / "encoder.onnx")


# ---------------------------------------------------------------------------------------------- pretrained saves

@pytest.fixture(scope="module")
def pretrained_folder(tmp_path_factory):
    pytest.importorskip("transformers")
    from test_pretrained import TINY, save_tiny_bert

    bert = save_tiny_bert(tmp_path_factory.mktemp("author-home") / "my-bert", list(TEXTS))
    model = TextAutoencoder(encoder=str(bert), **TINY).fit(list(TEXTS))
    return model.save(tmp_path_factory.mktemp("saved") / "model"), bert


@pytest.fixture
def pretrained_copy(pretrained_folder, tmp_path):
    return pathlib.Path(shutil.copytree(pretrained_folder[0], tmp_path / "model"))


def test_a_pretrained_save_records_the_folder_name_not_the_authors_path(pretrained_folder):
    folder, bert = pretrained_folder
    text = (folder / "config.json").read_text()
    assert str(bert.parent) not in text and '"encoder": "my-bert"' in text
    assert sktextae.load(folder).encoder == "my-bert"


@pytest.mark.parametrize("attention", ["kernels-community/flash-attn", "flash_attention_2", 5])
def test_hub_attention_in_a_resigned_pretrained_save_is_refused(pretrained_copy, attention):
    edited(pretrained_copy, lambda c: c["pretrained_encoder"].update(attn_implementation=attention))
    with pytest.raises(ModelFileError, match="attn_implementation"):
        sktextae.load(pretrained_copy)


@pytest.mark.parametrize("extra", [{"attn_implementation": "kernels-community/flash-attn"},
                                   {"model_type": "dpt", "is_hybrid": True, "backbone": "someone/model"},
                                   {"model_type": "detr", "backbone": "someone/model", "use_timm_backbone": True},
                                   {"auto_map": {"AutoModel": "model.Model"}},
                                   {"num_hidden_layers": 48}])
def test_crafted_encoder_config_in_a_resigned_save_is_refused(pretrained_copy, extra):
    file = pretrained_copy / "encoder" / "config.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), **extra}))
    resign(pretrained_copy, read_config(pretrained_copy))
    # Refused by the config's checks, or (48 layers) by the weights' shapes, before anything is allocated.
    with pytest.raises(ModelFileError, match="config.json|model.safetensors: tensor"):
        sktextae.load(pretrained_copy)


def test_every_crafted_folder_fails_cleanly_under_a_memory_limit(fitted, tmp_path):
    """The crafted folders above, loaded in one subprocess whose address space is capped at 2 GB above
    what it holds after importing the package: each ends in ModelFileError, and none gets near the cap."""
    folders = []
    for index, case in enumerate(sorted(CRAFTED)):
        folders.append(str(edited(fitted.save(tmp_path / f"case-{index}"), CRAFTED[case])))
    script = textwrap.dedent(f"""
        import resource, socket, sys
        import sktextae

        def refuse(*args, **kwargs):
            raise AssertionError("network")

        socket.socket.connect = socket.create_connection = socket.getaddrinfo = refuse
        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + 2 * 1024**3, resource.RLIM_INFINITY))
        for folder in {folders!r}:
            try:
                sktextae.load(folder)
                print("loaded", folder)
            except sktextae.ModelFileError:
                print("refused")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["refused"] * len(folders), result.stdout
