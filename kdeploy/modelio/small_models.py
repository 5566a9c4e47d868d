"""kdeploy's own small students over a teacher's tokenizer: a BiLSTM, a text CNN, and a
static-embedding model (token vectors, mean-pooled, a small classifier head).

They are `PreTrainedModel`s registered with the Auto classes, so they save as
safetensors, reload with `AutoModelForSequenceClassification`, and can be teachers too.
Both are exactly padding-invariant (extra right padding never changes a logit), which
keeps batching, bucketing and the ONNX parity check honest.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification,
                          PretrainedConfig, PreTrainedModel)
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput


class BiLSTMConfig(PretrainedConfig):
    model_type = "kdeploy-bilstm"

    def __init__(self, vocab_size=30522, embedding_dim=128, hidden_size=128, num_layers=1,
                 dropout=0.1, pad_token_id=0, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout


class StaticConfig(PretrainedConfig):
    model_type = "kdeploy-static"

    def __init__(self, vocab_size=30522, embedding_dim=256, hidden_size=256, dropout=0.1, pad_token_id=0,
                 normalize=False, token_weights=False, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size  # the head's hidden layer; 0: a linear head
        self.normalize = normalize  # the pooled vector L2-normalised before the head (model2vec's classifier)
        self.token_weights = token_weights  # a learnt scalar per token (model2vec's classifier), starting at 1
        self.dropout = dropout


class TextCNNConfig(PretrainedConfig):
    model_type = "kdeploy-cnn"

    def __init__(self, vocab_size=30522, embedding_dim=128, num_filters=128, kernel_sizes=(3, 4, 5),
                 dropout=0.1, pad_token_id=0, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.num_filters = num_filters
        self.kernel_sizes = list(kernel_sizes)
        self.dropout = dropout


def _reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's first `length` steps, leaving right padding in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    idx = torch.where(steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class _SmallClassifier(PreTrainedModel):
    base_model_prefix = "kdeploy"
    main_input_name = "input_ids"
    _supports_sdpa = False

    def _init_weights(self, module):
        if module is getattr(self, "token_weight", None):
            nn.init.ones_(module.weight)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.1)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()

    def get_input_embeddings(self):
        return self.embed

    def set_input_embeddings(self, value):
        self.embed = value

    def _output(self, logits, labels, return_dict):
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        if return_dict is False:
            return (loss, logits) if loss is not None else (logits,)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class _BiLSTM(_SmallClassifier):
    """The BiLSTM encoder both heads share: each token's forward and backward states."""

    config_class = BiLSTMConfig
    head_states = 2  # states per hidden unit the head reads: 2 per token (fwd, bwd); 4 pooled (mean, max)

    def __init__(self, config: BiLSTMConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        # Two one-way LSTMs rather than bidirectional=True: the backward one runs on each
        # sequence reversed within its length, so padding never leaks into a real step.
        self.forward_lstm = nn.LSTM(config.embedding_dim, config.hidden_size, config.num_layers, batch_first=True)
        self.backward_lstm = nn.LSTM(config.embedding_dim, config.hidden_size, config.num_layers, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.pre_classifier = nn.Linear(self.head_states * config.hidden_size, config.hidden_size)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _states(self, input_ids, attention_mask):
        """(states [B, L, 2H], mask [B, L, 1], lengths [B])."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.unsqueeze(-1).to(self.embed.weight.dtype)
        lengths = attention_mask.sum(1).clamp(min=1)
        x = self.dropout(self.embed(input_ids)) * mask
        fwd, _ = self.forward_lstm(x)
        bwd, _ = self.backward_lstm(_reverse_valid(x, lengths))
        return torch.cat([fwd, _reverse_valid(bwd, lengths)], dim=-1), mask, lengths


class BiLSTMForSequenceClassification(_BiLSTM):
    head_states = 4

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                return_dict=None, **kwargs):
        h, mask, lengths = self._states(input_ids, attention_mask)
        mean = (h * mask).sum(1) / lengths.unsqueeze(-1).to(h.dtype)
        maxed = h.masked_fill(mask == 0, torch.finfo(h.dtype).min).amax(1)
        pooled = torch.cat([mean, maxed], dim=-1)
        logits = self.classifier(self.dropout(torch.relu(self.pre_classifier(pooled))))
        return self._output(logits, labels, return_dict)


class BiLSTMForTokenClassification(_BiLSTM):
    """An entity tagger: each token's two states through a small head (a tag per token; the
    task reads each word's first sub-token, as for a transformer tagger)."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                return_dict=None, **kwargs):
        h, _, _ = self._states(input_ids, attention_mask)
        logits = self.classifier(self.dropout(torch.relu(self.pre_classifier(self.dropout(h)))))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                               ignore_index=-100)
        if return_dict is False:
            return (loss, logits) if loss is not None else (logits,)
        return TokenClassifierOutput(loss=loss, logits=logits)


class TextCNNForSequenceClassification(_SmallClassifier):
    config_class = TextCNNConfig

    def __init__(self, config: TextCNNConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        # Full padding (k-1 each side): with zeroed pad embeddings, positions inside a
        # sequence's window see exactly what an unpadded run would.
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embedding_dim, config.num_filters, k, padding=k - 1) for k in config.kernel_sizes
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.num_filters * len(config.kernel_sizes), config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                return_dict=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        lengths = attention_mask.sum(1).clamp(min=1)
        x = (self.embed(input_ids) * attention_mask.unsqueeze(-1).to(self.embed.weight.dtype)).transpose(1, 2)
        pooled = []
        for conv, k in zip(self.convs, self.config.kernel_sizes):
            h = torch.relu(conv(self.dropout(x)))
            steps = torch.arange(h.shape[-1], device=h.device).unsqueeze(0)
            valid = (steps < (lengths + k - 1).unsqueeze(1)).unsqueeze(1)
            pooled.append(h.masked_fill(~valid, torch.finfo(h.dtype).min).amax(-1))
        logits = self.classifier(self.dropout(torch.cat(pooled, dim=-1)))
        return self._output(logits, labels, return_dict)


class StaticEmbeddingForSequenceClassification(_SmallClassifier):
    """Static token vectors (derived from the teacher's encoder, model2vec-style), averaged over
    the real tokens, then a small head: the cheapest student there is (a lookup, a mean, two
    small matrix products), for the tightest devices and the largest streams."""

    config_class = StaticConfig

    def __init__(self, config: StaticConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        # A scalar per token is the same function as a rescaled vector, but Adam moves it as one
        # parameter: a token's say in the mean is learnt fast while its direction moves slowly.
        self.token_weight = nn.Embedding(config.vocab_size, 1) if getattr(config, "token_weights", False) else None
        self.dropout = nn.Dropout(config.dropout)
        if config.hidden_size:
            self.pre_classifier = nn.Linear(config.embedding_dim, config.hidden_size)
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        else:
            self.pre_classifier = None
            self.classifier = nn.Linear(config.embedding_dim, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                return_dict=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.unsqueeze(-1).to(self.embed.weight.dtype)
        vectors = self.embed(input_ids)
        if self.token_weight is not None:
            vectors = vectors * self.token_weight(input_ids)
        pooled = (vectors * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        if getattr(self.config, "normalize", False):
            pooled = nn.functional.normalize(pooled, dim=-1)
        x = self.dropout(pooled)
        if self.pre_classifier is not None:
            x = self.dropout(torch.relu(self.pre_classifier(x)))
        return self._output(self.classifier(x), labels, return_dict)


AutoConfig.register(StaticConfig.model_type, StaticConfig, exist_ok=True)
AutoModelForSequenceClassification.register(StaticConfig, StaticEmbeddingForSequenceClassification, exist_ok=True)
AutoConfig.register(BiLSTMConfig.model_type, BiLSTMConfig, exist_ok=True)
AutoConfig.register(TextCNNConfig.model_type, TextCNNConfig, exist_ok=True)
AutoModelForSequenceClassification.register(BiLSTMConfig, BiLSTMForSequenceClassification, exist_ok=True)
AutoModelForSequenceClassification.register(TextCNNConfig, TextCNNForSequenceClassification, exist_ok=True)
AutoModelForTokenClassification.register(BiLSTMConfig, BiLSTMForTokenClassification, exist_ok=True)

#: each small family's model per task head (a task kind's `model_class`)
HEADS = {
    "kdeploy-bilstm": {"AutoModelForSequenceClassification": BiLSTMForSequenceClassification,
                       "AutoModelForTokenClassification": BiLSTMForTokenClassification},
    "kdeploy-cnn": {"AutoModelForSequenceClassification": TextCNNForSequenceClassification},
    "kdeploy-static": {"AutoModelForSequenceClassification": StaticEmbeddingForSequenceClassification},
}
