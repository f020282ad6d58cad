"""Transformer encoders with task heads, split so regularizers can reach the hidden states.

Each model runs as ``embed -> layer 1..L -> head``.  ``hidden_states`` returns every
layer's output, ``run_from`` continues the stack from any layer (LNSR injects noise there),
``head`` maps the last hidden state to the output, and ``divergence`` measures how far two
outputs are apart (SMART and LNSR use it).  ``forward(input_ids, token_type_ids)`` is a
plain positional call, so the model trains, evaluates and exports like any other.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..core.builder import MODELS
from ..core.errors import ConfigError
from .pretrained import build_encoder


def sym_kl(p_logits, q_logits, axis=-1):
    """Symmetric KL between the softmax of two logits, summed over ``axis``, per sample."""
    lp, lq = F.log_softmax(p_logits, axis=axis), F.log_softmax(q_logits, axis=axis)
    return ((lp.exp() - lq.exp()) * (lp - lq)).sum(axis=axis)


class _EncoderModel(nn.Layer):
    def __init__(self, pretrained=None, encoder=None, dropout=0.1):
        super().__init__()
        self.encoder, info = build_encoder(pretrained, encoder)
        self.hidden_size = int(info["hidden_size"])
        self.pad_token_id = int(getattr(self.encoder.config, "pad_token_id", 0) or 0)
        self.dropout = nn.Dropout(dropout)

    @property
    def num_layers(self):
        return len(self.encoder.encoder.layers)

    def attention_mask(self, input_ids):
        return ((input_ids == self.pad_token_id).astype("float32") * -1e4).unsqueeze([1, 2])

    def embed(self, input_ids, token_type_ids=None):
        return self.encoder.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)

    def run_from(self, hidden, mask, start, end=None):
        """The outputs of layers ``start+1 .. end`` (default ``L``) given the output ``hidden``
        of layer ``start``; each layer runs once."""
        outs = []
        for layer in self.encoder.encoder.layers[start:end]:
            hidden = layer(hidden, mask)
            outs.append(hidden)
        return outs

    def hidden_states(self, input_ids, token_type_ids=None):
        """[embedding output, layer 1 output, ..., layer L output] and the attention mask."""
        mask = self.attention_mask(input_ids)
        h0 = self.embed(input_ids, token_type_ids)
        return [h0] + self.run_from(h0, mask, 0), mask

    def forward(self, input_ids, token_type_ids=None):
        hs, _ = self.hidden_states(input_ids, token_type_ids)
        return self.head(hs[-1], input_ids)


@MODELS.register()
class TransformerClassifier(_EncoderModel):
    """Sentence (pair) classification; ``num_classes: 1`` regresses.

    ``pooling: cls`` feeds the encoder's pooler ([CLS] state through its dense+tanh), as BERT
    was pre-trained; ``pooling: mean`` averages the non-padding tokens, as sentence-embedding
    checkpoints (e.g. all-MiniLM-L6-v2) were trained.
    """

    def __init__(self, num_classes, pretrained=None, encoder=None, dropout=0.1, pooling="cls"):
        super().__init__(pretrained, encoder, dropout)
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"model.pooling must be cls or mean, got {pooling!r}")
        self.num_classes, self.pooling = int(num_classes), pooling
        self.classifier = nn.Linear(self.hidden_size, self.num_classes)

    def head(self, hidden, input_ids=None):
        if self.pooling == "cls":
            pooled = self.encoder.pooler(hidden)
        else:
            if input_ids is None:
                raise ValueError("pooling: mean needs input_ids to find the padding")
            valid = (input_ids != self.pad_token_id).astype(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * valid).sum(axis=1) / valid.sum(axis=1).clip(min=1.0)
        return self.classifier(self.dropout(pooled))

    def divergence(self, p, q):
        if self.num_classes == 1:
            return ((p - q) ** 2).sum(axis=-1)
        return sym_kl(p, q)


@MODELS.register()
class TransformerQA(_EncoderModel):
    """Extractive QA: start and end logits per token, ``[batch, tokens, 2]``; padding masked."""

    def __init__(self, pretrained=None, encoder=None, dropout=0.1):
        super().__init__(pretrained, encoder, dropout)
        self.qa_outputs = nn.Linear(self.hidden_size, 2)

    def head(self, hidden, input_ids=None):
        logits = self.qa_outputs(self.dropout(hidden))
        if input_ids is not None:
            pad = (input_ids == self.pad_token_id).astype(logits.dtype).unsqueeze(-1)
            logits = logits - pad * 1e4
        return logits

    def divergence(self, p, q):
        return sym_kl(p.transpose([0, 2, 1]), q.transpose([0, 2, 1])).sum(axis=-1)
