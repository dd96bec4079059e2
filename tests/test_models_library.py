"""The local library: embedded default, imports (copied or linked), converted files, removal."""

from __future__ import annotations

import json

import pytest

from assistant import paths
from assistant.errors import InvalidInputError, ModelLoadError
from assistant.library import local as library
from assistant.library.catalog import find_entry, load_catalog
from assistant.settings import Settings
from tests.hub_server import Shape, write_model_gguf


@pytest.fixture(autouse=True)
def own_hub_cache(monkeypatch):
    """The Hub cache under this test's ASSISTANT_HOME, whatever the machine's HF_* settings."""
    for name in ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tiny(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    return write_model_gguf(folder / "tiny-F16.gguf")


def test_embedded_is_always_listed(model_path):
    models = library.list_models()
    assert models[0].id == "embedded" and models[0].kind == "embedded"
    assert models[0].path == model_path and models[0].usable
    assert models[0].info.quantization == "Q4_1"
    assert library.resolve("embedded").path == model_path


def test_import_copies_atomically(tiny, assistant_home):
    progress = []
    model = library.import_model(tiny, progress=lambda d, t: progress.append((d, t)))
    assert model.id == "local/tiny-F16.gguf" and model.kind == "imported"
    dest = assistant_home / "models" / "tiny-F16.gguf"
    assert model.path == dest and not dest.is_symlink()
    assert dest.read_bytes() == tiny.read_bytes()
    assert progress[-1] == (tiny.stat().st_size, tiny.stat().st_size)
    assert not list((assistant_home / "models").glob(".*.part"))
    assert [m.id for m in library.list_models()] == ["embedded", "local/tiny-F16.gguf"]
    assert library.resolve("tiny-F16.gguf").id == model.id  # by file name
    assert library.resolve(str(dest)).id == model.id  # by path
    with pytest.raises(InvalidInputError, match="already in the library as local/tiny-F16"):
        library.import_model(dest)


def test_import_refuses_what_is_not_a_model(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_bytes(b"hello, not a model")
    with pytest.raises(ModelLoadError, match="notes.gguf is not a GGUF model file"):
        library.import_model(bad)
    cut = write_model_gguf(tmp_path / "cut.gguf")
    cut.write_bytes(cut.read_bytes()[:-10])
    with pytest.raises(ModelLoadError, match="cut.gguf is truncated"):
        library.import_model(cut)
    assert not list(paths.models_dir().iterdir())


def test_name_clash(tiny, tmp_path):
    library.import_model(tiny)
    other = write_model_gguf(tmp_path / "tiny-F16.gguf", Shape(n_layers=3))
    with pytest.raises(InvalidInputError, match="Another model named tiny-F16.gguf"):
        library.import_model(other)


def test_link_and_broken_link(tiny):
    model = library.import_model(tiny, link=True)
    assert model.kind == "linked" and model.path.is_symlink() and model.usable
    tiny.unlink()
    assert "local/tiny-F16.gguf" not in [m.id for m in library.list_models()]
    broken = library.resolve("local/tiny-F16.gguf", include_unusable=True)
    assert "is gone" in broken.problem
    with pytest.raises(ModelLoadError, match="is gone"):
        library.model_path("local/tiny-F16.gguf")
    assert "is kept" in library.remove("local/tiny-F16.gguf")
    assert not model.path.is_symlink()


def test_split_model_import_and_remove(tmp_path, assistant_home):
    first = write_model_gguf(tmp_path / "big.gguf", Shape(n_layers=3), split_max_tensors=10)
    model = library.import_model(first)
    assert model.id == "local/big-00001-of-00003.gguf" and model.info.n_layers == 3
    assert len(list((assistant_home / "models").glob("big-*.gguf"))) == 3
    assert [m.id for m in library.list_models()][1:] == [model.id]  # one entry, not three
    library.remove(model.id)
    assert not list((assistant_home / "models").glob("big-*.gguf"))


def test_converted_and_hand_placed_files(tmp_path):
    converted = write_model_gguf(paths.models_dir() / "from-checkpoint-F16.gguf")
    library.register_converted(converted, "checkpoints/ckpt.pt")
    write_model_gguf(paths.models_dir() / "dropped-in.gguf")
    kinds = {m.id: (m.kind, m.source) for m in library.list_models()}
    assert kinds["local/from-checkpoint-F16.gguf"] == ("converted", "checkpoints/ckpt.pt")
    assert kinds["local/dropped-in.gguf"] == ("local", "")
    manifest = json.loads((paths.models_dir() / ".library.json").read_text())
    assert manifest["files"]["from-checkpoint-F16.gguf"]["kind"] == "converted"


def test_half_copied_files_are_not_listed(tiny):
    (paths.models_dir() / ".tiny-F16.gguf.1234abcd.part").write_bytes(tiny.read_bytes()[:100])
    cut = paths.models_dir() / "cut.gguf"
    cut.write_bytes(tiny.read_bytes()[:-5])
    assert [m.id for m in library.list_models()] == ["embedded"]
    listed = {m.id: m for m in library.list_models(include_unusable=True)}
    assert "truncated" in listed["local/cut.gguf"].problem


def test_remove(tiny):
    model = library.import_model(tiny)
    settings = Settings()
    settings.model = str(model.path)
    settings.save()
    text = library.remove(model.id)
    assert text.startswith("Removed local/tiny-F16.gguf") and "default again" in text
    assert Settings.load().model == "" and not model.path.exists()
    assert tiny.exists()  # the original is never touched
    with pytest.raises(InvalidInputError, match="cannot be removed"):
        library.remove("embedded")
    with pytest.raises(InvalidInputError, match="No model 'nothing'"):
        library.remove("nothing")


def test_catalog_lists_the_issue_models():
    entries = load_catalog()
    ids = {e.id for e in entries}
    for wanted in (
        "qwen2.5-0.5b-instruct",
        "qwen2.5-1.5b-instruct",
        "qwen2.5-3b-instruct",
        "qwen2.5-7b-instruct",
        "llama-3.2-1b-instruct",
        "llama-3.2-3b-instruct",
        "smollm2-1.7b-instruct",
        "phi-3.5-mini-instruct",
        "gemma-2-2b-it",
        "mistral-7b-instruct-v0.3",
        "smollm2-135m-instruct",
    ):
        assert wanted in ids
    for e in entries:
        assert e.repo.count("/") == 1 and e.license and e.description and e.context_length
        assert e.file_for().quant == e.default_quant and all(f.size_bytes > 0 for f in e.files)
    assert sum(e.embedded for e in entries) == 1
    qwen = find_entry("bartowski/qwen2.5-7b-instruct-gguf")
    assert qwen.file_for("q8_0").file == "Qwen2.5-7B-Instruct-Q8_0.gguf"
    with pytest.raises(InvalidInputError, match="no Q2_K file"):
        qwen.file_for("Q2_K")


def test_catalog_estimate_matches_the_real_embedded_header(model_path):
    """The pre-download estimate from catalog numbers is close to the real header's."""
    from assistant.library.fit import estimate
    from assistant.library.gguf_header import read_gguf_info

    approx = find_entry("smollm2-135m-instruct").approximate_info()
    real = read_gguf_info(model_path)
    assert approx.n_layers == real.n_layers and approx.n_vocab == real.n_vocab
    a, r = estimate(approx, 4096), estimate(real, 4096)
    assert a.kv_bytes == r.kv_bytes and a.compute_bytes == r.compute_bytes
    assert a.total_bytes == pytest.approx(r.total_bytes, rel=0.02)


def test_removing_the_default_chosen_by_id_resets_it(tmp_path):
    from assistant.library import local as library
    from assistant.settings import Settings
    from tests.hub_server import write_model_gguf

    source = write_model_gguf(tmp_path / "mine.gguf")
    model = library.import_model(source)
    settings = Settings.load()
    settings.model = model.id
    settings.save()
    assert "default" in library.remove(model.id)
    assert Settings.load().model == ""
