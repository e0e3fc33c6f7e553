import numpy as np

from serving.core.columns import GrowingColumns


def test_adding_rows_reuses_the_buffer_and_leaves_an_older_view_as_it_was():
    columns = GrowingColumns()
    first = columns.extended("c", np.zeros(0), 2, fill=1.0)
    second = columns.extended("c", first, 2, fill=2.0)
    assert second.base is first.base  # written into the spare rows, not copied
    assert first.tolist() == [1.0, 1.0]
    assert second.tolist() == [1.0, 1.0, 2.0, 2.0]
    third = columns.extended("c", second, 1, fill=3.0)  # past the buffer's end: a larger one
    assert third.base is not first.base and third.tolist() == [1.0, 1.0, 2.0, 2.0, 3.0]
    assert len(third.base) >= 2 * len(third)  # room for as many again


def test_a_copy_or_a_column_that_is_not_the_buffers_filled_part_gets_a_new_buffer():
    columns = GrowingColumns()
    first = columns.extended("c", np.zeros(0), 2, fill=1.0)
    copied = columns.extended("c", first, 1, fill=3.0, copy=True)
    assert copied.base is not first.base and copied.tolist() == [1.0, 1.0, 3.0]
    copied[0] = 9.0  # the caller changes a row the older view holds
    assert first.tolist() == [1.0, 1.0]
    # ``first`` no longer ends where its buffer is filled: growing it again must copy.
    again = columns.extended("c", first, 1, fill=4.0)
    assert again.base is not first.base and again.tolist() == [1.0, 1.0, 4.0]
    assert copied.tolist() == [9.0, 1.0, 3.0]
    foreign = np.arange(4.0)[:2]  # a view of an array someone else owns
    grown = columns.extended("c", foreign, 1)
    assert grown.base is not foreign.base and grown.tolist() == [0.0, 1.0, 0.0]


def test_a_reserved_load_grows_in_one_buffer():
    columns = GrowingColumns()
    columns.reserve(100)
    column = columns.extended("c", np.zeros((0, 3), np.uint16), 10)
    buffer = column.base
    for _ in range(9):
        column = columns.extended("c", column, 10, fill=7)
        assert column.base is buffer
    assert column.shape == (100, 3) and len(buffer) == 100
    assert int(column[:10].sum()) == 0 and (column[10:] == 7).all()
