import torch

from serving.models.user_encoder import UserEncoder, UserEncoderConfig
from serving.training.trainer import train_user_encoder


def make_batch(lengths: list[int], max_len: int = 8, items: int = 20):
    ids = torch.zeros(len(lengths), max_len, dtype=torch.long)
    types = torch.zeros(len(lengths), max_len, dtype=torch.long)
    for row, length in enumerate(lengths):
        if length:
            ids[row, -length:] = torch.randint(1, items + 1, (length,))
            types[row, -length:] = 1
    return ids, types, torch.randn(len(lengths), max_len, 384)


def test_user_vector_is_finite_for_short_padded_histories_in_eval_mode():
    # The nn.TransformerEncoder fast path returns NaN here; our attention must not.
    torch.manual_seed(0)
    model = UserEncoder(UserEncoderConfig(num_items=20, max_len=8)).eval()
    ids, types, content = make_batch([1, 3, 8, 0])
    with torch.inference_mode():
        hidden, attention = model(ids, types, content)
    assert hidden.shape == (4, 8, 64)
    assert torch.isfinite(hidden).all()
    assert torch.isfinite(attention[:3]).all()
    # Attention of the latest position covers only real history and sums to one.
    assert torch.allclose(attention[0, -1], torch.tensor(1.0))
    assert attention[1, :5].abs().sum() == 0
    assert torch.allclose(attention.sum(dim=1)[:3], torch.ones(3))


def test_attention_is_causal():
    torch.manual_seed(0)
    model = UserEncoder(UserEncoderConfig(num_items=20, max_len=8, dropout=0.0)).eval()
    ids, types, content = make_batch([8])
    with torch.inference_mode():
        before, _ = model(ids, types, content)
        changed = ids.clone()
        changed[0, -1] = (changed[0, -1] % 20) + 1
        after, _ = model(changed, types, content)
    # Changing the last item changes only the last position's output.
    assert torch.allclose(before[0, :-1], after[0, :-1], atol=1e-6)
    assert not torch.allclose(before[0, -1], after[0, -1])


def test_padding_items_have_no_learned_embedding():
    model = UserEncoder(UserEncoderConfig(num_items=5))
    assert model.item_embedding.weight[0].abs().sum() == 0


def test_training_recovers_a_planted_sequential_pattern():
    # Item i is always followed by item i+1 (cyclically); content carries no signal.
    items = [f"i{k}" for k in range(12)]
    histories = []
    for start in range(120):
        sequence = [(items[(start + step) % 12], 1) for step in range(9)]
        histories.append(sequence)
    content = torch.zeros(12, 384).numpy()
    config = UserEncoderConfig(num_items=12, max_len=8, dim=32, dropout=0.0)
    result = train_user_encoder(
        histories, items, content, config, epochs=12, batch_size=16, lr=5e-3, seed=1
    )
    assert result.losses[-1] < result.losses[0] * 0.3
    model, token = result.model, {item: i + 1 for i, item in enumerate(items)}
    table = torch.cat([torch.zeros(1, 384), torch.from_numpy(content)])
    with torch.no_grad():
        vectors = model.item_vectors(torch.arange(13), table)
    correct = 0
    for start in range(12):
        seq = [token[items[(start + s) % 12]] for s in range(8)]
        ids = torch.tensor([seq])
        with torch.no_grad():
            hidden, _ = model(ids, torch.ones_like(ids), table[ids])
            scores = hidden[0, -1] @ vectors.T
        scores[0] = -1e9
        correct += int(scores.argmax()) == token[items[(start + 8) % 12]]
    assert correct >= 11


def test_training_is_deterministic_for_a_seed():
    items = [f"i{k}" for k in range(6)]
    histories = [[(items[(s + k) % 6], 1) for k in range(5)] for s in range(20)]
    content = torch.randn(6, 384, generator=torch.Generator().manual_seed(0)).numpy()
    config = UserEncoderConfig(num_items=6, max_len=4, dim=16)
    a = train_user_encoder(histories, items, content, config, epochs=2, seed=3)
    b = train_user_encoder(histories, items, content, config, epochs=2, seed=3)
    assert a.losses == b.losses


def test_extra_left_padding_changes_nothing():
    # Columns that are padding in every row are cut before the blocks (serving a short
    # history with a long max_len costs the short length), with the same result.
    torch.manual_seed(0)
    model = UserEncoder(UserEncoderConfig(num_items=20, max_len=12)).eval()
    ids, types, content = make_batch([2, 5], max_len=5)
    padded = [torch.nn.functional.pad(t, (7, 0)) for t in (ids, types)]
    with torch.inference_mode():
        short, short_attention = model(ids, types, content)
        long, long_attention = model(*padded, torch.nn.functional.pad(content, (0, 0, 7, 0)))
    assert torch.allclose(short[:, -1], long[:, -1], atol=1e-5)
    assert torch.allclose(short_attention, long_attention[:, 7:], atol=1e-6)
    assert long_attention[:, :7].abs().sum() == 0


def test_attention_dropout_defaults_to_dropout_and_can_be_switched_off():
    inherits = UserEncoder(UserEncoderConfig(num_items=5, dropout=0.3))
    off = UserEncoder(UserEncoderConfig(num_items=5, dropout=0.3, attention_dropout=0.0))
    assert [b.attention_dropout for b in inherits.blocks] == [0.3, 0.3]
    assert [b.attention_dropout for b in off.blocks] == [0.0, 0.0]


def test_id_dropout_leaves_items_to_their_content_in_training_only():
    torch.manual_seed(0)
    model = UserEncoder(UserEncoderConfig(num_items=50, dim=8, id_dropout=0.5))
    ids = torch.arange(1, 51).repeat(20)
    content = torch.randn(len(ids), 384)
    projected = model.content_projection(content)
    model.train()
    by_content = (model.item_vectors(ids, content) - projected).abs().sum(-1) == 0
    assert 0.4 < by_content.float().mean() < 0.6  # about half lost their learned embedding
    model.eval()
    assert torch.equal(model.item_vectors(ids, content), model.item_embedding(ids) + projected)


def test_bounded_corrections_hold_their_norm_through_training():
    items = [f"i{k}" for k in range(12)]
    histories = [[(items[(s + k) % 12], 1) for k in range(9)] for s in range(60)]
    content = torch.randn(12, 384, generator=torch.Generator().manual_seed(0)).numpy()
    bound = 0.05
    config = UserEncoderConfig(num_items=12, max_len=8, dim=32, dropout=0.0, correction_norm=bound)
    free = UserEncoderConfig(num_items=12, max_len=8, dim=32, dropout=0.0)
    kwargs = dict(epochs=3, batch_size=16, lr=5e-3, seed=1)
    bounded = train_user_encoder(histories, items, content, config, **kwargs).model
    unbounded = train_user_encoder(histories, items, content, free, **kwargs).model
    norms = bounded.item_embedding.weight[1:].norm(dim=1)
    assert norms.max() <= bound * (1 + 1e-5)
    assert norms.min() > bound * 0.9  # trained up to the bound, not collapsed to zero
    assert unbounded.item_embedding.weight[1:].norm(dim=1).min() > 10 * bound


def test_known_item_vectors_encode_as_the_items_content_does():
    """What a served version carries: its items' vectors from their content as trained,
    so a history of known items needs their tokens alone."""
    torch.manual_seed(0)
    model = UserEncoder(UserEncoderConfig(num_items=20, max_len=8)).eval()
    content = torch.randn(20, 384)
    known = model.known_item_vectors(content)
    assert known.shape == (21, 64) and known[0].abs().sum() == 0
    ids, types, _ = make_batch([3, 8])
    with torch.inference_mode():
        expected, _ = model(ids, types, torch.cat([torch.zeros(1, 384), content])[ids])
        from_tokens, _ = model.encode(known[ids], types)
    assert torch.allclose(from_tokens, expected, atol=1e-5)
