"""Pretrained model folders as untrusted input: a crafted folder (config.json, weights, modules.json)
ends in ModelFileError naming the file and the field, and never reaches the network, runs code, asks
a question on the terminal or allocates a model much larger than its weights file.

Every test runs under a guard that refuses (and records) any socket connection or host lookup and
any read of the Hugging Face token file, and makes ``input()`` fail."""

import builtins
import json
import shutil
import socket
import sys

import huggingface_hub.constants
import pytest
import torch

from sktextae import TextAutoencoder
from sktextae import pretrained as pretrained_models
from sktextae.exceptions import ModelFileError
from sktextae.files import safetensors_header

transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402  (after the importorskip above)
from test_pretrained import TINY, save_tiny_bert  # noqa: E402

_WATCHED = []  # the attempts list of the running test; empty between tests
_TOKEN_FILES = {str(huggingface_hub.constants.HF_TOKEN_PATH),
                str(getattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", ""))} - {""}


def _audit(event, args):
    """Record, while a test runs, what the monkeypatched functions cannot see: a connection or host
    lookup made another way, and a read of the token file (which transformers does before a download)."""
    if not _WATCHED:
        return
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        _WATCHED[-1].append((event, str(args)[:80]))
    elif event == "open" and args and str(args[0]) in _TOKEN_FILES:
        _WATCHED[-1].append((event, str(args[0])))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it does nothing outside these tests


@pytest.fixture(autouse=True)
def guard(monkeypatch):
    """The list of network attempts (and token reads, and input() calls) made during the test."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(("network", str(args)[:80]))
        raise OSError("a test tried to use the network")

    def no_input(*args, **kwargs):
        attempts.append(("input", str(args)[:80]))
        raise EOFError("a test asked a question on the terminal")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(builtins, "input", no_input)
    pretrained_models._LOADED.clear()
    _WATCHED.append(attempts)
    try:
        yield attempts
    finally:
        _WATCHED.remove(attempts)
        pretrained_models._LOADED.clear()
    assert attempts == []


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, corpus):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), corpus)


def craft(tiny, tmp_path, config=None, **changes):
    """A copy of the tiny BERT's folder whose config.json is ``config`` (a dict, or raw bytes), or the
    tiny BERT's with ``changes``."""
    folder = tmp_path / "model"
    shutil.copytree(tiny, folder)
    if config is None:
        config = {**json.loads((tiny / "config.json").read_text()), **changes}
    (folder / "config.json").write_bytes(config if isinstance(config, bytes) else json.dumps(config).encode())
    return folder


def refused(folder, guard, match):
    """Assert that loading ``folder`` raises ModelFileError matching ``match``, and nothing else."""
    with pytest.raises(ModelFileError, match=match) as error:
        pretrained_models.load(str(folder))
    assert "could not be loaded as a Hugging Face model" in str(error.value)
    assert guard == []
    return error.value


@pytest.fixture
def allocations(monkeypatch):
    """The real (not meta-device) models that transformers builds during the test."""
    built = []
    real_from_pretrained, real_from_config = transformers.AutoModel.from_pretrained, transformers.AutoModel.from_config

    def from_pretrained(*args, **kwargs):
        built.append("from_pretrained")
        return real_from_pretrained(*args, **kwargs)

    def from_config(*args, **kwargs):
        if torch.get_default_device().type != "meta":
            built.append("from_config")
        return real_from_config(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", from_pretrained)
    monkeypatch.setattr(transformers.AutoModel, "from_config", from_config)
    return built


def test_the_guard_sees_a_connection_and_a_token_read(guard, tmp_path):
    with pytest.raises(OSError):
        socket.create_connection(("huggingface.co", 443))
    try:
        open(huggingface_hub.constants.HF_TOKEN_PATH).close()
    except OSError:
        pass
    assert [kind for kind, _ in guard] == ["network", "open"]
    guard.clear()


def test_a_plain_folder_still_loads(tiny, guard, allocations):
    model = pretrained_models.load(str(tiny))
    assert (model.hidden_size, model.pooling, model.normalize) == (32, "mean", False)
    reference = transformers.BertModel.from_pretrained(str(tiny)).state_dict()
    assert all(torch.equal(reference[name], value) for name, value in model.model.state_dict().items())
    assert allocations == ["from_pretrained"] and guard == []


# --------------------------------------------------------------------------- 1. nothing fetched

@pytest.mark.parametrize("config, field", [
    ({"attn_implementation": "kernels-community/flash-attn"}, "attn_implementation"),
    ({"attn_implementation": "flash_attention_2"}, "attn_implementation"),  # without flash_attn: a hub kernel
    ({"_attn_implementation": {"": "sdpa", "text_config": "kernels-community/x"}}, "_attn_implementation"),
    ({"experts_implementation": "sonicmoe"}, "experts_implementation"),
    ({"backbone": "someone/model"}, "backbone"),
    ({"use_timm_backbone": True}, "use_timm_backbone"),
    ({"use_pretrained_backbone": True}, "use_pretrained_backbone"),
    ({"backbone_config": {"model_type": "resnet"}}, "backbone_config"),
    ({"auto_map": {"AutoModel": "modeling_x.XModel"}}, "auto_map"),
    ({"trust_remote_code": True}, "trust_remote_code"),
    ({"custom_pipelines": {"x": {"impl": "pipe.X"}}}, "custom_pipelines"),
    ({"transformers_weights": "../other/model.safetensors"}, "transformers_weights"),
    ({"configuration_files": ["config.4.0.0.json"]}, "configuration_files"),
    ({"quantization_config": {"quant_method": "bitsandbytes"}}, "quantization_config"),
    ({"extra": {"nested": {"backbone": "someone/model"}}}, r"extra\.nested\.backbone"),
])
def test_a_config_that_would_fetch_models_code_or_kernels_is_refused(tiny, tmp_path, guard, config, field):
    error = refused(craft(tiny, tmp_path, **config), guard, match=rf"config\.json: field '{field}'")
    assert str(tmp_path / "model" / "config.json") in str(error)


@pytest.mark.parametrize("config, field", [
    ({"model_type": "dpt", "is_hybrid": True, "backbone": "someone/model"}, "backbone"),
    ({"model_type": "detr", "backbone": "someone/model", "use_timm_backbone": False}, "backbone"),
    ({"model_type": "detr", "use_timm_backbone": True}, "use_timm_backbone"),
])
def test_a_vision_config_with_a_backbone_never_reaches_the_hub(tiny, tmp_path, guard, config, field):
    refused(craft(tiny, tmp_path, config=config), guard, match=f"field '{field}'")


def test_null_or_false_fetching_keys_and_local_attention_are_accepted(tiny, tmp_path, guard):
    folder = craft(tiny, tmp_path, backbone=None, use_timm_backbone=False, auto_map={}, quantization_config=None,
                   attn_implementation="eager")
    model = pretrained_models.load(str(folder))
    assert model.model.config._attn_implementation == "eager" and guard == []


# --------------------------------------------------------------------------- 2. no code, no prompt

def test_custom_code_is_refused_without_a_prompt_and_never_runs(tiny, tmp_path, guard):
    folder = craft(tiny, tmp_path, model_type="my-model",
                   auto_map={"AutoConfig": "configuration_my.MyConfig", "AutoModel": "modeling_my.MyModel"})
    marker = tmp_path / "code-ran"
    for module in ("configuration_my.py", "modeling_my.py"):
        (folder / module).write_text(f"open({str(marker)!r}, 'w').close()\n")
    refused(folder, guard, match="field 'auto_map'")
    assert not marker.exists()


def test_an_unknown_model_type_is_refused(tiny, tmp_path, guard):
    refused(craft(tiny, tmp_path, model_type="my-model"), guard,
            match=r"field 'model_type' is 'my-model', not a model type that transformers .* ships")


def test_a_tokenizer_config_naming_custom_code_runs_none(tiny, tmp_path, guard):
    folder = craft(tiny, tmp_path)
    marker = tmp_path / "code-ran"
    (folder / "tokenization_my.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["auto_map"] = {"AutoTokenizer": ["tokenization_my.MyTokenizer", "tokenization_my.MyTokenizer"]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    model = pretrained_models.load(str(folder))  # trust_remote_code=False: the auto_map is ignored
    assert model.tokenizer.token_to_id("[CLS]") is not None
    assert not marker.exists() and guard == []


# --------------------------------------------------------------------------- 3. memory

def test_a_config_much_larger_than_its_weights_is_refused_before_allocating(tiny, tmp_path, guard, allocations):
    folder = craft(tiny, tmp_path, num_hidden_layers=48)  # a 48-layer BERT with the weights of 2 layers
    refused(folder, guard, match=r"config\.json: describes a model of [\d,]+ values, but .*model\.safetensors hold "
                                 r"only [\d,]+")
    assert allocations == []


def test_a_config_whose_shapes_disagree_with_the_weights_is_refused_before_allocating(tiny, tmp_path, guard,
                                                                                     allocations):
    folder = craft(tiny, tmp_path, intermediate_size=128)
    refused(folder, guard, match=r"model\.safetensors: tensor 'encoder\.layer\.0\.intermediate\.dense\.bias' has "
                                 r"shape \[64\], but the model that .*config\.json describes has \[128\]")
    assert allocations == []


def test_a_checkpoint_of_a_task_model_is_matched_by_its_prefix(tiny, tmp_path, guard, allocations):
    folder = craft(tiny, tmp_path, hidden_size=64, intermediate_size=128)
    state = load_file(str(folder / "model.safetensors"))
    save_file({f"bert.{name}": tensor for name, tensor in state.items()}, str(folder / "model.safetensors"))
    refused(folder, guard, match=r"tensor 'bert\.embeddings\.[^']*' has shape \[(\d+, )?32\]")
    assert allocations == []


def test_too_many_layers_are_refused_before_anything_is_built(tiny, tmp_path, guard, monkeypatch):
    built = []
    monkeypatch.setattr(transformers.AutoModel, "from_config", lambda *args, **kwargs: built.append(args))
    refused(craft(tiny, tmp_path, num_hidden_layers=5000), guard,
            match=r"field 'num_hidden_layers' is 5000, more than the 1024 layers")
    assert built == []


def test_weights_of_another_model_are_refused(tiny, tmp_path, guard):
    llama = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
             "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 300}
    refused(craft(tiny, tmp_path, config=llama), guard,
            match=r"model\.safetensors: lacks \d+ of the tensors of the model that .* describes \(100% of its values\)")


def test_a_checkpoint_without_its_pooler_still_loads(tiny, tmp_path, guard):
    folder = craft(tiny, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    save_file({name: tensor for name, tensor in state.items() if not name.startswith("pooler.")},
              str(folder / "model.safetensors"))
    model = pretrained_models.load(str(folder)).model.state_dict()
    assert all(torch.equal(model[name], tensor) for name, tensor in state.items() if not name.startswith("pooler."))


def test_weights_as_a_pickle_load_with_weights_only(tiny, tmp_path, guard):
    """transformers 5 reads pytorch_model.bin with torch.load(weights_only=True); so does the shape check."""
    folder = craft(tiny, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    model = pretrained_models.load(str(folder)).model.state_dict()
    assert all(torch.equal(model[name], tensor) for name, tensor in state.items())


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")  # unpickling it creates the marker file


def test_a_pickle_that_would_run_code_is_refused_and_runs_none(tiny, tmp_path, guard):
    folder = craft(tiny, tmp_path)
    marker = str(tmp_path / "code-ran")
    (folder / "model.safetensors").unlink()
    torch.save({"embeddings.word_embeddings.weight": torch.zeros(3), "x": _Payload(marker)},
               folder / "pytorch_model.bin")
    refused(folder, guard, match=r"pytorch_model\.bin: not a weights file that torch reads with weights_only=True "
                                 r"\(Unsupported global: GLOBAL (io|builtins)\.open\)\. Save the model as "
                                 r"model\.safetensors")
    assert not (tmp_path / "code-ran").exists()


@pytest.mark.parametrize("content, match", [
    (b"not safetensors", "not a readable safetensors file"),
    ((1 << 40).to_bytes(8, "little") + b"{}", "not a readable safetensors file"),
])
def test_a_damaged_weights_file_is_refused(tiny, tmp_path, guard, content, match):
    folder = craft(tiny, tmp_path)
    (folder / "model.safetensors").write_bytes(content)
    refused(folder, guard, match=rf"model\.safetensors: {match}")


@pytest.mark.parametrize("name, message", [
    ("adapter_config.json", "a PEFT adapter"),
    ("shard-00001-model-00001-of-00002.safetensors", "a distributed-checkpoint shard"),
])
def test_files_that_would_load_other_weights_are_refused(tiny, tmp_path, guard, name, message):
    folder = craft(tiny, tmp_path)
    (folder / name).write_text('{"base_model_name_or_path": "someone/model"}')
    refused(folder, guard, match=f"{name}: .*{message}")


# --------------------------------------------------------------------------- config.json itself

@pytest.mark.parametrize("content, match", [
    (b"[1, 2]", "expected a JSON object"),
    (b"{not json", r"not a JSON file \(JSONDecodeError"),
    (b"\xff\xfe{}", r"not a JSON file \(UnicodeDecodeError"),
    (b"[" * 100_000 + b"]" * 100_000, r"not a JSON file \(RecursionError"),
    (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "nests more than 32 levels deep"),
    (b'{"model_type": "bert", "pad": "' + b" " * (5 << 20) + b'"}', "larger than 4,194,304 bytes"),
    (b'{"hidden_size": 32}', r"field 'model_type' is 'None'"),
    (b'{"model_type": "vit"}', r"'vit', a ViTModel, which does not read text"),
    (b'{"model_type": "mra"}', "fetch compiled kernels"),
    (b'{"model_type": "bert", "dtype": "int8"}', r"field 'dtype' is 'int8'"),
    (b'{"model_type": "bert", "text_config": {"model_type": "nope"}}', r"field 'text_config\.model_type'"),
    (b'{"model_type": "bert", "hidden_size": "wide"}', "transformers cannot build"),
])
def test_a_bad_config_file_is_refused(tiny, tmp_path, guard, content, match):
    refused(craft(tiny, tmp_path, config=content), guard, match=match)


def test_the_estimator_reports_a_crafted_folder_as_a_model_file_error(tiny, tmp_path, texts, guard):
    folder = craft(tiny, tmp_path, attn_implementation="kernels-community/flash-attn")
    with pytest.raises(ModelFileError, match="field 'attn_implementation'"):
        TextAutoencoder(encoder=str(folder), **TINY).fit(texts)
    assert guard == []


# --------------------------------------------------------------------------- 4. modules.json

def with_modules(tiny, tmp_path, modules, pooling=None):
    folder = craft(tiny, tmp_path)
    (folder / "modules.json").write_bytes(modules if isinstance(modules, bytes) else json.dumps(modules).encode())
    if pooling is not None:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return folder


POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}


@pytest.mark.parametrize("modules, match", [
    (b"[{", r"modules\.json: not a JSON file"),
    ({"path": "1_Pooling"}, r"modules\.json: expected a JSON list of modules"),
    (["1_Pooling"], r"modules\.json: expected a JSON list of modules"),
    ([{**POOLING, "path": 1}], r"modules\.json: module 0: field 'path' is 1, not a string"),
    ([{**POOLING, "type": None}], r"modules\.json: module 0: field 'type' is None, not a string"),
    ([{**POOLING, "path": "/etc"}], r"modules\.json: module 0: field 'path' is '/etc', not a path relative"),
    ([{**POOLING, "path": "C:\\pooling"}], "not a path relative"),
    ([{**POOLING, "path": "../outside"}], r"modules\.json: module 0: field 'path' is '\.\./outside', which leads "
                                          r"outside the model folder"),
    ([{**POOLING, "path": "2_Pooling"}], r"module 0 \(Pooling\) is in '2_Pooling', which holds no config\.json"),
])
def test_a_bad_modules_file_is_refused(tiny, tmp_path, guard, modules, match):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text('{"pooling_mode_cls_token": true}')  # what a path outside would read
    refused(with_modules(tiny, tmp_path, modules, pooling={"pooling_mode_mean_tokens": True}), guard, match=match)


def test_a_module_path_through_a_symbolic_link_out_of_the_folder_is_refused(tiny, tmp_path, guard):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text('{"pooling_mode_cls_token": true}')
    folder = with_modules(tiny, tmp_path, [POOLING])
    (folder / "1_Pooling").symlink_to(outside, target_is_directory=True)
    refused(folder, guard, match="field 'path' is '1_Pooling', which leads outside the model folder")


@pytest.mark.parametrize("pooling, match", [
    ({"pooling_mode_cls_token": "yes"}, r"1_Pooling/config\.json: field 'pooling_mode_cls_token' is 'yes', not true "
                                        r"or false"),
    ([True], r"1_Pooling/config\.json: expected a JSON object"),
])
def test_a_bad_pooling_config_is_refused(tiny, tmp_path, guard, pooling, match):
    refused(with_modules(tiny, tmp_path, [POOLING], pooling=pooling), guard, match=match)


def test_a_module_path_inside_the_folder_is_followed(tiny, tmp_path, guard):
    folder = with_modules(tiny, tmp_path, [{**POOLING, "path": "./1_Pooling/../1_Pooling"},
                                           {"type": "sentence_transformers.models.Normalize", "path": "2_Normalize"}],
                          pooling={"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False})
    model = pretrained_models.load(str(folder))
    assert (model.pooling, model.normalize) == ("max", True)


# --------------------------------------------------------------------------- 6. for saved models

def saved_config(tiny):
    """The encoder config that save() keeps: the loaded model's full config, as persistence writes it."""
    model = transformers.BertModel.from_pretrained(str(tiny))
    return json.loads(model.config.to_json_string(use_diff=False)), model


def test_check_model_config_returns_a_copy_of_a_saved_config(tiny):
    config, _ = saved_config(tiny)
    checked = pretrained_models.check_model_config(config, file="encoder/config.json")
    assert checked == config and checked is not config
    checked["id2label"]["0"] = "changed"
    assert config["id2label"]["0"] != "changed"


@pytest.mark.parametrize("config, match", [
    ([], r"^encoder/config\.json: expected a JSON object"),
    ({"model_type": "bert", "backbone": "x/y"}, r"^encoder/config\.json: field 'backbone'"),
    ({"model_type": "bert", "num_layers": [2, 2000]}, r"^encoder/config\.json: field 'num_layers' is \[2, 2000\]"),
])
def test_check_model_config_names_the_file_and_the_field(config, match):
    with pytest.raises(ModelFileError, match=match):
        pretrained_models.check_model_config(config, file="encoder/config.json")


def test_model_from_config_builds_the_saved_architecture_with_random_weights(tiny, allocations):
    config, reference = saved_config(tiny)
    shapes = {name: shape for name, (_, shape) in safetensors_header(tiny / "model.safetensors").items()}
    model = pretrained_models.model_from_config(config, file="encoder/config.json", attn_implementation="eager",
                                                dtype="bfloat16", weights_shapes=shapes)
    assert type(model) is type(reference) and not model.training
    assert model.config._attn_implementation == "eager"
    assert {name: tuple(p.shape) for name, p in model.named_parameters()} == \
        {name: tuple(p.shape) for name, p in reference.named_parameters()}
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not torch.equal(model.embeddings.word_embeddings.weight.float(),
                           reference.embeddings.word_embeddings.weight)  # random, not the folder's
    assert allocations == ["from_config"]


@pytest.mark.parametrize("layers, change, match", [
    (2, {"encoder.layer.0.output.dense.weight": (32, 65)},
     r"tensor 'encoder\.layer\.0\.output\.dense\.weight' has shape \[32, 65\], but the model that "
     r"encoder/config\.json describes has \[32, 64\]"),
    (24, {}, r"^encoder/config\.json: describes a model of [\d,]+ values, but the weights hold only [\d,]+"),
])
def test_model_from_config_refuses_weights_that_disagree_before_allocating(tiny, allocations, layers, change, match):
    config, _ = saved_config(tiny)
    config["num_hidden_layers"] = layers  # 24 layers, and the weights of 2
    shapes = {name: shape for name, (_, shape) in safetensors_header(tiny / "model.safetensors").items()}
    with pytest.raises(ModelFileError, match=match):
        pretrained_models.model_from_config(config, file="encoder/config.json", attn_implementation=None,
                                            dtype="float32", weights_shapes={**shapes, **change})
    assert allocations == []


@pytest.mark.parametrize("options, match", [
    ({"attn_implementation": "flash_attention_2", "dtype": "float32"}, "attn_implementation 'flash_attention_2'"),
    ({"attn_implementation": "kernels-community/x", "dtype": "float32"},
     "attn_implementation 'kernels-community/x' is not one that runs locally"),
    ({"attn_implementation": None, "dtype": "int8"}, r"dtype 'int8' is not one of \('float32'"),
])
def test_model_from_config_refuses_options_that_do_not_run_locally(tiny, allocations, options, match):
    config, _ = saved_config(tiny)
    with pytest.raises(ModelFileError, match=rf"^encoder/config\.json: {match}"):
        pretrained_models.model_from_config(config, file="encoder/config.json", **options)
    assert allocations == []
