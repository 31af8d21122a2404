"""benchmarks/recsys.py: RecBole's dumped scores are ranked on our split with our masks and negatives."""

import numpy as np
import pytest
from seqlab.recsys.data import EvalTargets, leave_one_out, read_interactions
from tests._bench import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("recsys", "recsys_bench")


@pytest.fixture
def log_csv(tmp_path):
    rng = np.random.default_rng(1)
    rows = ["user,item,timestamp"]
    for u in range(9):
        for t, i in enumerate(rng.choice(np.arange(300, 340), size=int(rng.integers(5, 15)), replace=False)):
            rows.append(f"{u + 10},{i},{t}")
    p = tmp_path / "log.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


def _dump(path, split, test, score_fn, rng, corrupt_user=None):
    """A dump shaped like job_recbole's: RecBole ids in a shuffled item order, users in a shuffled order."""
    tokens = np.array(["[PAD]", *rng.permutation(split.items)])
    order = rng.permutation(len(test.samples))
    scores, users, targets, last = [], [], [], []
    for k in order:
        u, hist, target, _ = test.samples[k]
        ours = score_fn(u, hist, target)  # [num_items + 1] in our ids
        scores.append(np.concatenate([[0.0], [ours[split.item_index[t]] for t in tokens[1:]]]))
        users.append(split.users[u])
        t = target if u != corrupt_user else int(hist[0])
        targets.append(split.items[t - 1])
        last.append(split.items[hist[-1] - 1])
    np.savez(path, scores=np.array(scores, dtype=np.float32), users=np.array(users), targets=np.array(targets),
             last_inputs=np.array(last), item_tokens=tokens)


def test_id_mapping_and_protocols(bench, log_csv, tmp_path):
    split = leave_one_out(read_interactions(log_csv))
    test = EvalTargets(split, "test", 8, num_negatives=5, seed=0)
    rng = np.random.default_rng(0)

    def perfect(u, hist, target):
        s = np.zeros(split.num_items + 1)
        s[target] = 10.0
        return s

    _dump(tmp_path / "p.npz", split, test, perfect, rng)
    m = bench.rank_recbole_scores(str(tmp_path / "p.npz"), str(log_csv), 8)
    assert m["test/full/NDCG@10"] == 1.0 and m["test/sampled/HR@1"] == 1.0

    def seen_on_top(u, hist, target):  # every seen item outscores the target: masked in full ranking
        s = np.zeros(split.num_items + 1)
        s[hist] = 20.0
        s[target] = 10.0
        return s

    _dump(tmp_path / "s.npz", split, test, seen_on_top, rng)
    assert bench.rank_recbole_scores(str(tmp_path / "s.npz"), str(log_csv), 8)["test/full/HR@1"] == 1.0

    def constant(u, hist, target):  # ties rank pessimistically in both protocols
        return np.ones(split.num_items + 1)

    _dump(tmp_path / "c.npz", split, test, constant, rng)
    m = bench.rank_recbole_scores(str(tmp_path / "c.npz"), str(log_csv), 8)
    assert m["test/full/HR@1"] == 0.0 and m["test/sampled/HR@1"] == 0.0


def test_split_mismatch_raises(bench, log_csv, tmp_path):
    split = leave_one_out(read_interactions(log_csv))
    test = EvalTargets(split, "test", 8, num_negatives=5, seed=0)
    _dump(tmp_path / "x.npz", split, test, lambda u, h, t: np.zeros(split.num_items + 1),
          np.random.default_rng(0), corrupt_user=int(test.samples[3][0]))
    with pytest.raises(RuntimeError, match="differ from our split"):
        bench.rank_recbole_scores(str(tmp_path / "x.npz"), str(log_csv), 8)
