"""The training loop (objectives, early stopping, budget, schedule) and the offline
commands end to end on tiny synthetic data. The full-softmax planted-pattern test is in
test_user_encoder.py; here the same kind of pattern checks the sampled objective."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from serving.cli import app
from serving.models.user_encoder import UserEncoderConfig
from serving.training import datasets, evaluation, pipeline, trainer
from serving.training.runs import load_run

ITEMS = 12


def cyclic_dataset(users=96, length=10, items=ITEMS):
    """Item i is always followed by item i+1 (cyclically); content carries no signal."""
    interactions = {
        f"u{u}": [(float(t), f"i{(u + t) % items}", 1) for t in range(length)] for u in range(users)
    }
    return datasets.build_dataset("cyclic", interactions, {f"i{k}": "" for k in range(items)})


def small(**overrides):
    values = dict(num_items=ITEMS, max_len=8, dim=32, layers=1, heads=1, dropout=0.0)
    return UserEncoderConfig(**(values | overrides))


def test_sampled_softmax_learns_the_planted_pattern():
    dataset = cyclic_dataset()
    content = np.zeros((ITEMS, 384), np.float32)
    options = trainer.TrainingOptions(
        epochs=12, batch_size=16, lr=1e-2, loss="sampled", negatives=6, patience=12, seed=1
    )
    run = pipeline.train_run(dataset, content, small(), options)
    losses = run.record["losses"]
    assert losses[-1] < losses[0] * 0.3
    test = datasets.leave_one_out(dataset, "test")
    scorer = evaluation.ModelScorer(run.model, trainer.content_table(content))
    report = evaluation.evaluate(scorer, test, dataset.num_items, cutoffs=(1,))
    assert report["HR@1"] > 0.9


def test_bf16_autocast_learns_the_planted_pattern_with_the_full_softmax():
    dataset = cyclic_dataset()
    content = np.zeros((ITEMS, 384), np.float32)
    options = trainer.TrainingOptions(
        epochs=12, batch_size=16, lr=1e-2, patience=12, seed=1, precision="bf16"
    )
    run = pipeline.train_run(dataset, content, small(), options)
    assert next(run.model.parameters()).dtype == torch.float32  # weights stay fp32
    test = datasets.leave_one_out(dataset, "test")
    scorer = evaluation.ModelScorer(run.model, trainer.content_table(content))
    assert evaluation.evaluate(scorer, test, dataset.num_items, cutoffs=(1,))["HR@1"] > 0.9


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        trainer.TrainingOptions(precision="fp16")


def test_early_stopping_keeps_the_best_validated_weights():
    dataset = cyclic_dataset(users=16)
    seqs, types = datasets.training_sequences(dataset)
    tokens, kinds = trainer.left_pad(seqs, types, 9)
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.9])
    seen = []

    def validate(model):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    options = trainer.TrainingOptions(epochs=6, batch_size=8, patience=2)
    model, losses, validations, best, stopped = trainer.fit(
        tokens, kinds, torch.zeros(ITEMS + 1, 384), small(), options, validate=validate
    )
    assert (best, stopped, len(losses)) == (2, "early stopping", 4)
    assert [e for e, _ in validations] == [1, 2, 3, 4]
    assert all(torch.equal(v, seen[1][k]) for k, v in model.state_dict().items())


def test_time_budget_stops_before_an_epoch_that_would_not_fit():
    dataset = cyclic_dataset(users=16)
    seqs, types = datasets.training_sequences(dataset)
    tokens, kinds = trainer.left_pad(seqs, types, 9)
    options = trainer.TrainingOptions(epochs=50, batch_size=8, time_budget_s=1e-9)
    _, losses, _, _, stopped = trainer.fit(
        tokens, kinds, torch.zeros(ITEMS + 1, 384), small(), options
    )
    assert stopped == "time budget" and len(losses) <= 1


def test_cosine_schedule_warms_up_then_decays_to_zero():
    options = trainer.TrainingOptions(epochs=10, lr=1.0, schedule="cosine", warmup_steps=5)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = trainer.lr_schedule(optimizer, options, steps_per_epoch=10)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.2) and max(rates) == pytest.approx(1.0)
    assert rates[-1] < 0.01 and rates == [*rates[:5], *sorted(rates[5:], reverse=True)]


def test_fit_is_deterministic_for_a_seed_with_either_loss():
    dataset = cyclic_dataset(users=16)
    content = np.random.default_rng(0).normal(size=(ITEMS, 384)).astype(np.float32)
    for loss in ("full", "sampled"):
        options = trainer.TrainingOptions(epochs=2, batch_size=8, loss=loss, negatives=4, seed=3)
        a = pipeline.train_run(dataset, content, small(dropout=0.2), options)
        b = pipeline.train_run(dataset, content, small(dropout=0.2), options)
        assert a.record["losses"] == b.record["losses"]
        assert a.record["validation"] == b.record["validation"]


def test_id_only_ablation_trains_without_content():
    dataset = cyclic_dataset(users=16)
    content = np.ones((ITEMS, 384), np.float32)
    options = trainer.TrainingOptions(epochs=1, batch_size=8)
    run = pipeline.train_run(dataset, content, small(), options, use_content=False)
    assert not run.content.any() and run.record["use_content"] is False
    assert not run.model.content_projection.weight.any()  # real content changes nothing


def genre_dataset(users=96, items=60, genres=6, length=8):
    """Each user stays within one genre (item k is of genre k % genres), in random order;
    content is the genre (one-hot, plus noise), so only content can place an unseen item."""
    rng = np.random.default_rng(0)
    interactions = {
        f"u{u}": [(float(t), f"i{k}", 1) for t, k in enumerate(
            rng.choice(np.arange(u % genres, items, genres), length))]
        for u in range(users)
    }  # fmt: skip
    dataset = datasets.build_dataset("genres", interactions, {f"i{k}": "" for k in range(items)})
    content = rng.normal(scale=0.02, size=(items, 384)).astype(np.float32)
    content[np.arange(items), [int(i[1:]) % genres for i in dataset.item_ids]] += 1.0
    return dataset, content


def test_new_items_are_recommended_from_their_content_alone():
    dataset, content = genre_dataset()
    cold = datasets.cold_items(dataset, 0.25, seed=0)
    options = trainer.TrainingOptions(epochs=4, batch_size=16, lr=1e-2, seed=0)
    runs = {
        name: pipeline.train_run(dataset, content, small(num_items=60), options,
                                 use_content=name == "ours", cold=cold)
        for name in ("ours", "ID-only")
    }  # fmt: skip
    assert 0 < runs["ours"].record["interactions"] < dataset.num_interactions  # trained without
    assert not runs["ours"].model.item_embedding.weight[torch.from_numpy(cold)].any()
    result = pipeline.compare_cold(dataset, cold, runs, content)
    ours, id_only = result.reports["ours · cold items"], result.reports["ID-only · cold items"]
    test = datasets.leave_one_out(dataset, "test")
    assert ours.users == len(datasets.with_targets_in(test, cold).targets) > 0
    # Content places a new item among its genre's; without content it has no vector at all.
    assert ours["HR@10"] > 0.8 and ours["HR@10"] > id_only["HR@10"] + 0.5
    assert "content similarity · cold items" in result.reports and "cold items" in result.notes[0]


CLI_ITEMS = 30


def write_cli_files(folder):
    """30 users over 30 items: user u interacts with items u, u+1, ..., u+7 (mod 30), so
    the test target (u+7) is the next one after the history, and every item is equally
    popular."""
    rows = ["user_id,item_id,timestamp"]
    for u in range(30):
        rows += [f"u{u},m{(u + t) % CLI_ITEMS},{t}" for t in range(8)]
    (folder / "events.csv").write_text("\n".join(rows) + "\n")
    items = "item_id,title,description\n" + "".join(
        f'm{i},Film number {i},"A film.\nSecond line"\n' for i in range(CLI_ITEMS)
    )
    (folder / "items.csv").write_text(items)


CLI_COMMON = ["--epochs", "2", "--max-len", "6", "--dim", "16", "--batch-size", "8"]


def test_train_then_eval_from_the_command_line(tmp_path, monkeypatch):
    # An events file and an items file; MiniLM embeds the titles in-process.
    write_cli_files(tmp_path)
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))
    runner = CliRunner()
    trained = runner.invoke(
        app,
        ["train", "--events", str(tmp_path / "events.csv"), "--items", str(tmp_path / "items.csv"),
         "--out", str(tmp_path / "run"), *CLI_COMMON],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "validation NDCG@10" in trained.output
    run = load_run(tmp_path / "run")
    assert set(run.vocabulary) == {f"m{i}" for i in range(CLI_ITEMS)} and run.content.any()
    evaluated = runner.invoke(
        app, ["eval", "--run", str(tmp_path / "run"), "--json", str(tmp_path / "r.json")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    models = {"ours (content + ID)", "ours, ID-only (ablation)", "popularity", "EASE (λ=500)",
              "content similarity"}  # fmt: skip
    assert set(results) == models | {f"{m} · rare targets" for m in models}
    # Every item is equally popular and ties count against the target: popularity ranks it
    # behind all 22 other unseen items. EASE's co-occurrences put the next item first or
    # second (the item before the history co-occurs with it exactly as often).
    assert results["popularity"]["HR@20"] == 0.0
    assert results["EASE (λ=500)"]["HR@10"] == 1.0
    assert 1 / np.log2(3) - 1e-9 <= results["EASE (λ=500)"]["NDCG@10"] <= 1.0
    assert results["ours (content + ID)"]["HR@10"] > results["popularity"]["HR@10"]


def test_train_no_content_never_runs_minilm(tmp_path, monkeypatch):
    write_cli_files(tmp_path)
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))

    def no_minilm(*args, **kwargs):
        raise AssertionError("--no-content must not embed items")

    monkeypatch.setattr("serving.training.content.embed_items", no_minilm)
    trained = CliRunner().invoke(
        app,
        ["train", "--events", str(tmp_path / "events.csv"), "--items", str(tmp_path / "items.csv"),
         "--no-content", "--out", str(tmp_path / "run"), *CLI_COMMON],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "ID-only" in trained.output
    run = load_run(tmp_path / "run")
    assert run.record["use_content"] is False
    assert run.content.shape == (CLI_ITEMS, 384) and not run.content.any()


def test_train_reports_a_malformed_file_and_exits(tmp_path, monkeypatch):
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp\nu,a,1\nu,b,later\n")
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(app, ["train", "--events", str(tmp_path / "events.csv")])
    assert result.exit_code == 2
    assert "events.csv:3: timestamp must be a number or ISO-8601, got 'later'" in result.output


def test_bounded_corrections_and_imputed_vectors_place_new_items_by_their_content():
    dataset, content = genre_dataset()
    cold = datasets.cold_items(dataset, 0.25, seed=0)
    options = trainer.TrainingOptions(epochs=4, batch_size=16, lr=1e-2, seed=0)
    bound = 0.3
    run = pipeline.train_run(
        dataset, content, small(num_items=60, correction_norm=bound), options, cold=cold
    )
    weights = run.model.item_embedding.weight.detach()
    assert weights.norm(dim=1).max() <= bound * (1 + 1e-5)
    # Imputation gives each new item the learned vectors of its genre (its content
    # neighbours): nearest known item by learned vector is one of the same genre.
    imputed = pipeline.with_imputed(run, cold, k=5).model.item_embedding.weight.detach()
    genre = np.array([int(i[1:]) % 6 for i in dataset.item_ids])
    known = np.setdiff1d(np.arange(1, 61), cold)
    unit = torch.nn.functional.normalize(weights[torch.from_numpy(known)], dim=1)
    nearest = known[(torch.nn.functional.normalize(imputed[cold], dim=1) @ unit.T).argmax(1)]
    assert (genre[nearest - 1] == genre[cold - 1]).mean() > 0.9
    assert torch.equal(imputed[torch.from_numpy(known)], weights[torch.from_numpy(known)])
    result = pipeline.compare_cold(dataset, cold, {"ours": run}, content, impute=5)
    assert result.reports["ours · cold items"]["HR@10"] > 0.8
    assert result.reports["ours + 5-NN imputation · cold items"]["HR@10"] > 0.8


def test_items_that_do_not_exist_yet_are_never_candidates_in_training():
    # Items newer than the model were never negatives: their learned embedding stays zero
    # and nothing teaches the projection to push their content down.
    dataset, content = genre_dataset()
    cold = datasets.cold_items(dataset, 0.25, seed=0)
    sequences, types = datasets.training_sequences(datasets.without_items(dataset, cold))
    tokens, kinds = trainer.left_pad(sequences, types, 9)
    table = trainer.content_table(content)
    for loss in ("full", "sampled"):
        options = trainer.TrainingOptions(epochs=2, batch_size=16, loss=loss, negatives=30)
        model, *_ = trainer.fit(tokens, kinds, table, small(num_items=60), options, absent=cold)
        weights = model.item_embedding.weight.detach()
        assert not weights[torch.from_numpy(cold)].any()
        known = np.setdiff1d(np.arange(1, 61), cold)
        assert weights[torch.from_numpy(known)].norm(dim=1).min() > 0
