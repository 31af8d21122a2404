import math

import pytest
import torch
from seqlab.recsys.metrics import RankingAccumulator, full_ranks, metrics_from_ranks, sampled_ranks


def brute_full_rank(scores, target, seen):
    """Loop oracle: competitors are items 1..N, not seen, not the target; ties count against the target."""
    rank = 0
    for i in range(1, len(scores)):
        if i == target or i in seen:
            continue
        if scores[i] >= scores[target]:
            rank += 1
    return rank


@pytest.mark.parametrize("seed", range(5))
def test_full_ranks_match_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    B, N = 16, 25
    scores = torch.randint(0, 6, (B, N + 1), generator=g).float()  # many ties on purpose
    targets = torch.randint(1, N + 1, (B,), generator=g)
    targets[0], targets[1] = 1, N  # target at both ends
    seen = torch.randint(0, N + 1, (B, 7), generator=g)
    seen[2, 0] = targets[2]  # a target that was seen before is still ranked
    got = full_ranks(scores, targets, seen)
    for b in range(B):
        want = brute_full_rank(scores[b].tolist(), int(targets[b]), set(seen[b].tolist()) - {int(targets[b])})
        assert int(got[b]) == want


def test_ties_are_pessimistic():
    scores = torch.zeros(1, 11)
    assert int(full_ranks(scores, torch.tensor([3]))) == 9
    assert int(sampled_ranks(torch.zeros(1), torch.zeros(1, 100))) == 100


def test_padding_column_never_competes():
    scores = torch.tensor([[100.0, 1.0, 2.0, 3.0]])
    assert int(full_ranks(scores, torch.tensor([3]))) == 0


def test_sampled_ranks_match_brute_force():
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 5, (20,), generator=g).float()
    n = torch.randint(0, 5, (20, 100), generator=g).float()
    got = sampled_ranks(t, n)
    for b in range(20):
        assert int(got[b]) == sum(float(x) >= float(t[b]) for x in n[b])


def test_metric_values():
    m = metrics_from_ranks(torch.tensor([0, 1, 9, 10, 25]), ks=(1, 10, 20))
    assert m["HR@1"].tolist() == [1, 0, 0, 0, 0]
    assert m["HR@10"].tolist() == [1, 1, 1, 0, 0]
    assert m["HR@20"].tolist() == [1, 1, 1, 1, 0]
    assert m["NDCG@10"].tolist() == pytest.approx([1.0, 1 / math.log2(3), 1 / math.log2(11), 0, 0])
    assert m["MRR@20"].tolist() == pytest.approx([1.0, 0.5, 0.1, 1 / 11, 0])


def test_accumulator_means_over_all_users_with_labels():
    acc = RankingAccumulator(ks=(10,))
    acc.update("full", torch.tensor([0, 20]))
    acc.update("full", torch.tensor([1]))
    acc.update("sampled", torch.tensor([0]))
    out = acc.compute("test")
    assert out["test/full/HR@10"] == pytest.approx(2 / 3)
    assert out["test/sampled/NDCG@10"] == pytest.approx(1.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="targets"):
        full_ranks(torch.zeros(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="scores"):
        full_ranks(torch.zeros(5), torch.tensor([1]))
    with pytest.raises(ValueError, match="seen"):
        full_ranks(torch.zeros(2, 5), torch.tensor([1, 2]), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="negative_scores"):
        sampled_ranks(torch.zeros(2), torch.zeros(3, 4))
