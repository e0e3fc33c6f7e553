"""The sequence Transformer that turns a user's recent interactions into a vector.

Each position is a learned item embedding + a projection of the item's content
embedding + an event-type embedding + a position embedding; causal
self-attention; the last position's output is the user vector, in the same
space as the item vectors (learned embedding + projected content).

Attention is written with ``F.scaled_dot_product_attention`` rather than
``nn.TransformerEncoder``: the latter's eval-mode fast path returns NaN for
left-padded sequences with a causal mask (torch 2.13), which would silently
break serving.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from serving.models.content_encoder import EMBEDDING_DIM

NUM_EVENT_TYPES = 7  # EventType values 0..6; 0 marks padding


@dataclass(frozen=True)
class UserEncoderConfig:
    """Shape of a user encoder; stored next to its weights."""

    num_items: int
    """Items with a learned embedding; their ids are 1..num_items, 0 means none."""
    dim: int = 64
    max_len: int = 50
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2
    attention_dropout: float | None = None
    """Dropout on the attention weights; None: ``dropout``. 0 saves about a sixth of
    the training time on CPU (the mask is drawn over every query-key pair)."""
    id_dropout: float = 0.0
    """Training only: the share of item occurrences (inputs and scored items) whose
    learned embedding is left out, so the model also learns to place items by content
    alone, as items newer than the model are served."""
    correction_norm: float | None = None
    """Training only: the learned embedding is a correction to the projected content
    whose L2 norm is held at most this (rows renormalised after every step; "Let It Go?
    Not Quite", RecSys 2025), so the item space stays the content's and an item newer
    than the model, which has no correction, lands where its text puts it. None: free."""
    content_dim: int = EMBEDDING_DIM

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


class CausalBlock(nn.Module):
    """Pre-norm Transformer block with causal, padding-aware attention."""

    def __init__(self, dim: int, heads: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, length, dim = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split_heads(x)
        drop = self.attention_dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        batch, _, length, _ = attended.shape
        x = x + self.dropout(self.out(attended.transpose(1, 2).reshape(batch, length, -1)))
        return x + self.dropout(self.ffn(self.norm2(x)))

    def last_query_attention(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """Attention of the last position over all positions, averaged over heads."""
        q, k, _ = self.split_heads(x)
        scores = q[:, :, -1:, :] @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
        scores = scores.masked_fill(~attn_mask[:, :, -1:, :], float("-inf"))
        return torch.softmax(scores, dim=-1).mean(dim=1).squeeze(1)


class UserEncoder(nn.Module):
    """Recent interactions -> user vector (see module docstring)."""

    def __init__(self, config: UserEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.item_embedding = nn.Embedding(config.num_items + 1, config.dim, padding_idx=0)
        self.content_projection = nn.Linear(config.content_dim, config.dim)
        self.type_embedding = nn.Embedding(NUM_EVENT_TYPES, config.dim, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_len, config.dim)
        attention_dropout = (
            config.dropout if config.attention_dropout is None else config.attention_dropout
        )
        self.blocks = nn.ModuleList(
            CausalBlock(config.dim, config.heads, config.dropout, attention_dropout)
            for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(config.dim)
        self.dropout = nn.Dropout(config.dropout)
        # Unit-scale logits at the start (the hidden state is layer-normed, so its norm is
        # about sqrt(dim)): with BERT's usual std 0.02 the logits start near zero, the
        # attention gets almost no gradient and training sits on a long plateau that
        # only learns popularity (seen on MovieLens and on a planted sequential pattern).
        nn.init.normal_(self.item_embedding.weight, std=config.dim**-0.5)
        # Position and event type start small so that the items dominate the input (with
        # nn.Embedding's std 1 they drowned the item signal 8:1).
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        nn.init.normal_(self.type_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
            self.type_embedding.weight[0].zero_()

    @torch.no_grad()
    def bound_corrections(self) -> None:
        """Hold every learned embedding's norm at most ``correction_norm`` (in place, so
        the exported weights are the bounded corrections the model was trained with)."""
        if self.config.correction_norm is not None:
            weight = self.item_embedding.weight
            weight.copy_(weight.renorm(2, 0, self.config.correction_norm))

    def item_vectors(self, item_ids: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """Items in the shared space: learned embedding (id 0: none) + projected content."""
        learned = self.item_embedding(item_ids)
        if self.training and self.config.id_dropout > 0:
            keep = torch.rand(item_ids.shape, device=item_ids.device) >= self.config.id_dropout
            learned = learned * keep.unsqueeze(-1)
        return learned + self.content_projection(content)

    def attention_mask(self, event_types: torch.Tensor) -> torch.Tensor:
        """Boolean (batch, 1, L, L): causal, and padding keys hidden.

        A padded query row would have no visible key (NaN); it may see itself.
        """
        length = event_types.shape[1]
        valid = event_types > 0
        causal = torch.ones(length, length, dtype=torch.bool, device=event_types.device).tril()
        mask = causal & valid[:, None, None, :]
        eye = torch.eye(length, dtype=torch.bool, device=event_types.device)
        return mask | eye

    @torch.no_grad()
    def known_item_vectors(self, content: torch.Tensor) -> torch.Tensor:
        """(num_items + 1, dim) every vocabulary item's vector (learned embedding +
        projected content) from ``content``, its (num_items, content_dim) content as
        trained; row 0 is zero. What a served version carries, so that a history of items
        it knows needs their tokens only (``encode``)."""
        vectors = self.item_embedding.weight[1:] + self.content_projection(content)
        return F.pad(vectors, (0, 0, 1, 0))

    def embed(self, items: torch.Tensor, event_types: torch.Tensor) -> torch.Tensor:
        """Input of the first block: item vector + event type + position, zero at padding."""
        length = items.shape[1]
        positions = torch.arange(length, device=items.device) + (self.config.max_len - length)
        x = (
            items
            + self.type_embedding(event_types)
            + self.position_embedding(positions.clamp(min=0))[None]
        )
        return self.dropout(x) * (event_types > 0).unsqueeze(-1)

    def forward(
        self, item_ids: torch.Tensor, event_types: torch.Tensor, content: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position outputs (batch, L, dim) and the last block's attention of the
        latest position over the history (batch, L), which explains recommendations.

        The user vector is the output at the last position (histories are left-padded).
        """
        return self.encode(self.item_vectors(item_ids, content), event_types)

    def encode(
        self, items: torch.Tensor, event_types: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` from the positions' item vectors (batch, L, dim).

        Columns that are padding in every row are cut before the blocks and the outputs
        padded back (zeros), so the cost follows the longest real history in the batch,
        not ``max_len``: a model built for 200 positions serves a 50-item history at the
        cost of 50. Positions count from the right, so the result is the same.
        """
        length = items.shape[1]
        real = (event_types > 0).any(dim=0)
        first = int(real.to(torch.int8).argmax()) if bool(real.any()) else length - 1
        if first > 0:
            hidden, attention = self._encode(items[:, first:], event_types[:, first:])
            return F.pad(hidden, (0, 0, first, 0)), F.pad(attention, (first, 0))
        return self._encode(items, event_types)

    def _encode(
        self, items: torch.Tensor, event_types: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.attention_mask(event_types)
        x = self.embed(items, event_types)
        for block in self.blocks[:-1]:
            x = block(x, mask)
        last: CausalBlock = self.blocks[-1]  # type: ignore[assignment]
        attention = last.last_query_attention(x, mask)
        x = last(x, mask)
        return self.norm(x), attention
