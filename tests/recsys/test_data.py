import numpy as np
import pytest
import torch
from seqlab.core.errors import DataError
from seqlab.recsys.data import (
    EvalTargets,
    TrainWindows,
    detect_format,
    kcore_filter,
    leave_one_out,
    left_pad,
    read_interactions,
    recbole_ml100k_path,
)

ROWS = [("1", "10", 5), ("1", "11", 3), ("2", "10", 1), ("1", "12", 4), ("2", "13", 2), ("1", "13", 3),
        ("3", "11", 9)]


def _write(tmp_path, fmt):
    if fmt == "ml-1m":
        p = tmp_path / "ratings.dat"
        p.write_text("".join(f"{u}::{i}::4::{t}\n" for u, i, t in ROWS))
    elif fmt == "ml-100k":
        p = tmp_path / "u.data"
        p.write_text("".join(f"{u}\t{i}\t4\t{t}\n" for u, i, t in ROWS))
    elif fmt == "recbole":
        p = tmp_path / "x.inter"
        p.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                     + "".join(f"{u}\t{i}\t4\t{t}\n" for u, i, t in ROWS))
    else:
        p = tmp_path / "log.csv"
        p.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in ROWS))
    return p


@pytest.mark.parametrize("fmt", ["ml-1m", "ml-100k", "recbole", "csv"])
def test_readers_agree(tmp_path, fmt):
    p = _write(tmp_path, fmt)
    assert detect_format(p) == fmt
    df = read_interactions(p)
    assert list(df.columns) == ["user", "item", "timestamp"]
    assert list(zip(df.user, df.item, df.timestamp.astype(int))) == ROWS


def test_chronological_stable_split(tmp_path):
    split = leave_one_out(read_interactions(_write(tmp_path, "csv")))
    assert split.users == ["1", "2", "3"] and split.items == ["10", "11", "12", "13"]
    # user 1: ts 5,3,4,3 -> items 11 (ts3), 13 (ts3, file order kept), 12 (ts4), 10 (ts5)
    assert split.sequences[0].tolist() == [2, 4, 3, 1]
    assert split.sequences[1].tolist() == [1, 4]
    assert split.num_train_only_users == 2
    assert split.eval_users.tolist() == [0]
    assert split.train_sequence(0).tolist() == [2, 4]
    assert split.train_sequence(1).tolist() == [1, 4]  # short users keep everything in training
    val, test = EvalTargets(split, "val", 5, 0), EvalTargets(split, "test", 5, 0)
    assert int(val[0]["target"]) == 3 and val[0]["seen"].tolist() == [2, 4]
    assert int(test[0]["target"]) == 1 and test[0]["seen"].tolist() == [2, 4, 3]
    assert test[0]["seq"].tolist() == [0, 0, 2, 4, 3]


def test_short_users_are_reported(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        split = leave_one_out(read_interactions(_write(tmp_path, "csv")))
    assert "2 of 3 users have fewer than 3 interactions" in caplog.text
    assert split.summary()["train_only_users"] == 2


def test_kcore():
    import pandas as pd

    df = pd.DataFrame({"user": list("aaabbc"), "item": list("xyzxyx"), "timestamp": range(6)})
    out = kcore_filter(df, min_user=2, min_item=2)
    assert set(out.user) == {"a", "b"} and set(out.item) == {"x", "y"}
    with pytest.raises(DataError, match="left no interactions"):
        kcore_filter(df, min_user=5)


def test_unknown_format(tmp_path):
    p = tmp_path / "weird.txt"
    p.write_text("hello world\nfoo bar\n")
    with pytest.raises(DataError, match="unknown interaction format"):
        read_interactions(p)
    with pytest.raises(DataError, match="unknown format"):
        read_interactions(_write(tmp_path, "csv"), fmt="parquet")


def test_missing_columns(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("user,item,rating\n1,2,3\n")
    with pytest.raises(DataError, match="missing column.*timestamp"):
        read_interactions(p)
    q = tmp_path / "b.inter"
    q.write_text("user_id:token\trating:float\n1\t3\n")
    with pytest.raises(DataError, match="item, timestamp"):
        read_interactions(q)


def test_missing_file_nan_and_bad_columns(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_interactions(tmp_path / "nope.csv")
    p = tmp_path / "n.csv"
    p.write_text("user,item,timestamp\n1,2,\n")
    with pytest.raises(DataError, match="NaN"):
        read_interactions(p)
    q = tmp_path / "ratings.dat"
    q.write_text("1::2::3\n")
    with pytest.raises(DataError, match="4 '::'-separated"):
        read_interactions(q)


def test_recbole_ml100k_is_found():
    p = recbole_ml100k_path()
    assert p.name == "ml-100k.inter" and "site-packages" in str(p)


def test_train_windows_and_negatives(tmp_path):
    split = leave_one_out(read_interactions(_write(tmp_path, "csv")))
    ds = TrainWindows(split, max_len=4, num_negatives=3)
    assert len(ds) == 2  # users with >= 2 training items (user 3 has one)
    torch.manual_seed(0)
    s = ds[0]
    assert s["seq"].tolist() == [0, 0, 0, 2] and s["pos"].tolist() == [0, 0, 0, 4]
    assert s["neg"].shape == (4, 3) and (s["neg"][:3] == 0).all()
    assert not set(s["neg"][3].tolist()) & {2, 4}


def test_eval_negatives_deterministic_and_unseen():
    split = leave_one_out(read_interactions(recbole_ml100k_path()))
    a, b = EvalTargets(split, "test", 50, 100, seed=3), EvalTargets(split, "test", 50, 100, seed=3)
    assert len(a) == 943
    for i in (0, 500):
        assert torch.equal(a[i]["negatives"], b[i]["negatives"])
        u = int(a[i]["user"])
        assert not set(a[i]["negatives"].tolist()) & set(split.sequences[u].tolist())
    assert not torch.equal(a[0]["negatives"], EvalTargets(split, "test", 50, 100, seed=4)[0]["negatives"])


def test_left_pad():
    assert left_pad(np.array([1, 2, 3]), 5).tolist() == [0, 0, 1, 2, 3]
    assert left_pad(np.array([1, 2, 3]), 2).tolist() == [2, 3]
