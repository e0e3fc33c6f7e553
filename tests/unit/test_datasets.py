"""Loaders of the training data: each format on tiny synthetic files, the leave-one-out
split, and clear errors (file and line) for malformed input."""

import numpy as np
import pytest

from serving.training import datasets, movielens
from serving.training.datasets import DatasetError
from serving.training.events_file import load_events_file
from serving.training.sources import DataSource, load_movielens


def write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


def sasrec_folder(tmp_path):
    write(tmp_path / "ml-1m.txt", "1 1\n1 2\n1 3\n1 2\n2 3\n2 1\n")
    write(tmp_path / "sas_to_original_items.txt", "1 10\n2 20\n3 30\n")
    write(
        tmp_path / "movies.dat",
        "10::Toy Story (1995)::Animation|Comedy\n20::Heat (1995)::Action\n"
        "30::Señor (1990)::Drama\n",
        encoding="latin-1",
    )
    return tmp_path


def test_sasrec_file_keeps_order_and_gets_titles_and_genres(tmp_path):
    dataset = load_movielens(sasrec_folder(tmp_path))
    assert dataset.item_ids == ("1", "2", "3")
    assert dataset.users == ("1", "2")
    assert dataset.sequences[0].tolist() == [1, 2, 3, 2]
    assert dataset.texts[0] == "Toy Story (1995). Categories: Animation, Comedy"
    assert dataset.texts[2].startswith("Señor")
    assert dataset.event_types is None


def test_leave_one_out_holds_out_the_last_two_items(tmp_path):
    dataset = load_movielens(sasrec_folder(tmp_path))
    valid = datasets.leave_one_out(dataset, "valid")
    test = datasets.leave_one_out(dataset, "test")
    assert valid.targets.tolist() == [3] and valid.inputs[0].tolist() == [1, 2]
    assert test.targets.tolist() == [2] and test.inputs[0].tolist() == [1, 2, 3]
    # User 2 has 2 interactions: trained on, never evaluated.
    train, _ = datasets.training_sequences(dataset)
    assert [t.tolist() for t in train] == [[1, 2], [3, 1]]


def test_rare_targets_are_those_in_few_training_interactions():
    interactions = {
        "a": [(0, "x", 1), (1, "y", 1), (2, "x", 1), (3, "z", 1)],  # test target z: 0 in training
        "b": [(0, "y", 1), (1, "x", 1), (2, "z", 1), (3, "x", 1)],  # test target x: 3
        "c": [(0, "x", 1), (1, "y", 1)],  # too short to evaluate; trains x and y
    }
    dataset = datasets.build_dataset("rare", interactions, {})
    test = datasets.leave_one_out(dataset, "test")
    rare = datasets.with_targets_rarer_than(test, dataset, max_count=2)
    assert [dataset.users[u] for u in rare.users] == ["a"]
    assert rare.inputs[0].tolist() == test.inputs[0].tolist() and rare.targets.tolist() == [3]
    assert len(datasets.with_targets_rarer_than(test, dataset, max_count=3).targets) == 2


def test_ml100k_sorts_by_time_and_decodes_latin1_genres(tmp_path):
    write(tmp_path / "u.data", "7\t2\t5\t300\n7\t1\t3\t100\n7\t3\t4\t200\n")
    flags = "|".join(["0"] * 19)
    action = "|".join(["0", "1"] + ["0"] * 17)
    write(
        tmp_path / "u.item",
        f"1|Café (1995)|01-Jan-1995||url|{flags}\n2|Heat (1995)|01-Jan-1995||url|{action}\n"
        f"3|Up (2009)|01-Jan-2009||url|{flags}\n",
        encoding="latin-1",
    )
    dataset = load_movielens(tmp_path)
    assert [dataset.item_ids[t - 1] for t in dataset.sequences[0]] == ["1", "3", "2"]
    assert dataset.texts[dataset.item_ids.index("2")] == "Heat (1995). Categories: Action"
    assert dataset.texts[0] == "Café (1995)"


def test_ml1m_originals(tmp_path):
    write(tmp_path / "ratings.dat", "1::10::5::20\n1::20::3::10\n")
    write(tmp_path / "movies.dat", "10::A (1990)::Drama\n20::B (1991)::Comedy\n")
    dataset = load_movielens(tmp_path)
    assert [dataset.item_ids[t - 1] for t in dataset.sequences[0]] == ["20", "10"]


def test_ml_latest_adds_tags_to_the_text(tmp_path):
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,5,4.0,10\n1,6,3.0,5\n")
    write(
        tmp_path / "movies.csv",
        'movieId,title,genres\n5,"Heat, The (1995)",Action|Crime\n6,X,(no genres listed)\n',
    )
    write(tmp_path / "tags.csv", "userId,movieId,tag,timestamp\n1,5,heist,1\n2,5,heist,2\n")
    dataset = load_movielens(tmp_path)
    assert dataset.texts[0] == "Heat, The (1995). Categories: Action, Crime. Tags: heist"
    assert dataset.sequences[0].tolist() == [2, 1]


def test_events_csv_with_types_iso_times_and_items(tmp_path):
    events = write(
        tmp_path / "events.csv",
        "user_id,item_id,timestamp,type\n"
        "u,b,2026-01-02T00:00:00,click\nu,a,2026-01-01T00:00:00,skip\nu,c,5e9,4\n",
    )
    items = write(
        tmp_path / "items.jsonl",
        '{"item_id": "a", "title": "Alpha", "tags": ["x", "y"]}\n'
        '{"item_id": "b", "title": "Beta"}\n',
    )
    dataset = load_events_file(events, items)
    assert dataset.item_ids == ("a", "b", "c")
    assert dataset.texts == ("Alpha. Tags: x, y", "Beta", "c")
    assert dataset.sequences[0].tolist() == [1, 2, 3]
    assert dataset.types_of(0).tolist() == [4, 1, 4]


def test_events_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "events.parquet"
    pq.write_table(
        pa.table({"user_id": ["u", "u"], "item_id": ["x", "y"], "timestamp": [2, 1]}), path
    )
    dataset = load_events_file(path)
    assert [dataset.item_ids[t - 1] for t in dataset.sequences[0]] == ["y", "x"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("ml-1m.txt", "1 1\n1 x\n", "ml-1m.txt:2: item id must be an integer, got 'x'"),
        ("ml-1m.txt", "1 1\n\n3\n", "ml-1m.txt:3: expected 'user item'"),
        ("u.data", "1\t2\t3\tnoon\n", "u.data:1: timestamp must be an integer"),
        ("ratings.dat", "1::2::3\n", "ratings.dat:1: expected user::movie::rating::time"),
    ],
)
def test_malformed_movielens_files_name_file_and_line(tmp_path, name, text, message):
    write(tmp_path / name, text)
    write(tmp_path / "movies.dat", "")
    write(tmp_path / "u.item", "")
    with pytest.raises(DatasetError) as error:
        load_movielens(tmp_path)
    assert message in str(error.value)
    assert str(tmp_path / name) in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user_id,item_id\nu,a\n", "events.csv:1: missing column(s) timestamp"),
        ("user_id,item_id,timestamp\nu,a,1\nu,b\n", "events.csv:3: expected 3 fields, got 2"),
        ("user_id,item_id,timestamp\nu,a,yesterday\n", "events.csv:2: timestamp must be"),
        ("user_id,item_id,timestamp,type\nu,a,1,buy\n", "events.csv:2: unknown event type 'buy'"),
        ("user_id,item_id,timestamp\n,a,1\n", "events.csv:2: user_id and item_id must not"),
    ],
)
def test_malformed_events_file_names_file_and_line(tmp_path, text, message):
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_events_file(write(tmp_path / "events.csv", text))


def test_undecodable_bytes_and_missing_files_are_reported(tmp_path):
    (tmp_path / "events.csv").write_bytes(b"user_id,item_id,timestamp\nu,\xff,1\n")
    with pytest.raises(DatasetError, match=r"events.csv:2: not utf-8 text"):
        load_events_file(tmp_path / "events.csv")
    with pytest.raises(DatasetError, match="not a MovieLens folder"):
        load_movielens(tmp_path)
    with pytest.raises(DatasetError, match=r"movies.dat: file not found"):
        movielens.read_movies_dat(tmp_path / "movies.dat")


def test_a_data_source_is_exactly_one_thing():
    with pytest.raises(ValueError, match="exactly one"):
        DataSource(path="a", events="b")
    record = DataSource(database_url="postgresql://u:secret@h/db").describe()
    assert "secret" not in str(record)


def test_build_dataset_carries_known_content_by_item():
    dataset = datasets.build_dataset(
        "t",
        {"u": [(1.0, "b", 1), (2.0, "a", 1)]},
        {"a": "A", "b": "B"},
        content={"a": np.ones(3), "b": np.zeros(3)},
    )
    assert dataset.content is not None
    assert dataset.content[dataset.item_ids.index("a")].tolist() == [1, 1, 1]


def test_cold_items_are_a_seeded_fraction_removed_from_every_sequence():
    interactions = {
        "a": [(0, "x", 1), (1, "y", 3), (2, "z", 1), (3, "y", 1)],
        "b": [(0, "z", 1), (1, "x", 1)],
    }
    dataset = datasets.build_dataset("cold", interactions, {"x": "", "y": "", "z": ""})
    cold = datasets.cold_items(dataset, 0.34, seed=5)
    assert len(cold) == 1 and cold.tolist() == datasets.cold_items(dataset, 0.34, seed=5).tolist()
    warm = datasets.without_items(dataset, np.array([2]))  # token 2 is "y"
    assert warm.item_ids == dataset.item_ids  # tokens still line up
    assert [s.tolist() for s in warm.sequences] == [[1, 3], [3, 1]]
    assert [t.tolist() for t in warm.event_types] == [[1, 1], [1, 1]]  # y's DISLIKE went with it
    test = datasets.leave_one_out(dataset, "test")
    assert datasets.with_targets_in(test, np.array([2])).targets.tolist() == [2]
    with pytest.raises(ValueError, match="fraction"):
        datasets.cold_items(dataset, 1.0)
