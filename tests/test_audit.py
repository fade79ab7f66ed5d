"""The audit's pure parts against brute force."""
import numpy as np
import pytest

from pipeline import audit


@pytest.mark.parametrize("block, columns", [(7, 5), (1024, 8192)], ids=["small blocks", "one block"])
@pytest.mark.parametrize("kind", ["random", "equal means"])
def test_near_pairs_match_a_brute_force_search_across_blocks(monkeypatch, block, columns, kind):
    # several blocks of rows and of columns, so pairs across their borders are exercised
    monkeypatch.setattr(audit, "BLOCK", block)
    monkeypatch.setattr(audit, "BLOCK_COLUMNS", columns)
    rng = np.random.default_rng(0)
    T = rng.random((40, 12)).astype(np.float32)
    if kind == "equal means":  # every row a permutation of one row: no pruning by the mean can apply
        T = np.stack([rng.permutation(T[0]) for _ in range(40)])
    T[25] = T[3] + 0.01  # planted near copies: one brighter, one darker, one with a mean unchanged
    T[39] = T[30] - 0.02
    T[17] = T[8] + np.where(np.arange(12) % 2, 0.03, -0.03).astype(np.float32)
    threshold = 0.05
    expected = [(i, j) for i in range(40) for j in range(i + 1, 40)
                if np.sqrt(np.mean((T[i].astype(np.float64) - T[j]) ** 2)) < threshold]
    found = audit.near_pairs(T, threshold)
    assert [(i, j) for i, j, _ in found] == expected  # the same pairs, in the order of (i, j)
    assert {(3, 25), (30, 39), (8, 17)} <= set(expected)
    assert all(abs(d - np.sqrt(np.mean((T[i] - T[j]) ** 2))) < 1e-5 for i, j, d in found)


def test_near_pairs_of_many_rows_of_spread_out_means_match_brute_force(monkeypatch):
    monkeypatch.setattr(audit, "BLOCK", 256)  # many blocks, each compared with a narrow window of columns
    rng = np.random.default_rng(2)
    T = (rng.random((3000, 1)) + rng.normal(0, 0.05, (3000, 48))).astype(np.float32)  # brightness, then detail
    T[2345] = T[77] + 0.005
    T[1000] = T[999] - 0.01
    d = np.sqrt(np.maximum((np.sum(T * T, 1)[:, None] + np.sum(T * T, 1)[None, :] - 2.0 * T @ T.T) / 48, 0))
    expected = [(int(i), int(j)) for i, j in zip(*np.nonzero(d < 0.02)) if i < j]
    assert [(i, j) for i, j, _ in audit.near_pairs(T, 0.02)] == expected == [(77, 2345), (999, 1000)]


def test_exact_copies_are_grouped_with_leaks_and_conflicting_labels():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    x_test = x[[0, 1]].copy()  # both copies of training images
    result = audit.audit({"train": (x, np.array([[1, 0, 0, 1]]), None),
                          "test": (x_test, np.array([[1, 1]]), None)}, ("non-cat", "cat"))
    groups = {tuple(g["examples"]): (g["leak"], g["label_conflict"]) for g in result["exact_duplicates"]["listed"]}
    assert groups == {("train:0", "test:0"): (True, False), ("train:1", "test:1"): (True, True)}
    assert result["near_duplicates"]["pairs"] == 0
    assert result["balance"]["train"] == {"non-cat": 2, "cat": 2, "positive_fraction": 0.5}


def test_many_look_alike_images_are_counted_without_holding_every_pair(monkeypatch):
    # 300 near-identical thumbnails make 44,850 near pairs: all are counted, the first LISTED listed
    monkeypatch.setattr(audit, "LISTED", 5)
    monkeypatch.setattr(audit, "BLOCK", 64)  # pairs found in many blocks, listed in (i, j) order all the same
    rng = np.random.default_rng(3)
    base = rng.random(768).astype(np.float32)
    prints = [(f"sha{k}", base + rng.normal(0, 0.001, 768).astype(np.float32)) for k in range(300)]
    y = (np.arange(300) % 2)[None, :]  # alternate labels: every pair of neighbours conflicts
    described, describe = [], audit._describe
    monkeypatch.setattr(audit, "_describe", lambda *a: described.append(a) or describe(*a))  # counts the calls
    result = audit.audit_fingerprints({"train": (y[:, :200], None, prints[:200]),
                                       "test": (y[:, 200:], None, prints[200:])}, ("non-cat", "cat"))
    near = result["near_duplicates"]
    assert near["pairs"] == 300 * 299 // 2
    assert near["leaks"] == 200 * 100  # a train image with a test image
    labels = y[0]
    assert near["label_conflicts"] == sum(labels[i] != labels[j] for i in range(300) for j in range(i + 1, 300))
    assert [p["examples"] for p in near["listed"]] == [["train:0", f"train:{j}"] for j in range(1, 6)]
    assert all(p["label_conflict"] == (j % 2 == 1) for j, p in enumerate(near["listed"], start=1))
    assert len(described) == 5  # a record made for the listed pairs only, not for 44,850


@pytest.mark.parametrize("block", [3, 1024], ids=["small blocks", "one block"])
def test_duplicate_groups_join_exact_copies_and_chains_of_near_pairs_as_brute_force(monkeypatch, block):
    monkeypatch.setattr(audit, "BLOCK", block)
    monkeypatch.setattr(audit, "BLOCK_COLUMNS", block)
    rng = np.random.default_rng(3)
    T = rng.random((30, 12)).astype(np.float32)
    T[7] = T[2] + 0.03  # a chain 2 - 7 - 11: 11 is not near 2 itself, but the three are one group
    T[11] = T[7] + 0.03
    T[20] = T[5] - 0.001
    prints = [(f"sha{k}", T[k]) for k in range(30)]
    prints[14] = prints[9]  # the same pixels as image 9
    prints[16] = None  # a skipped file: alone
    threshold = 0.04
    assert np.sqrt(np.mean((T[2] - T[11]) ** 2)) > threshold
    # the oracle: union of every exact pair and every near pair found by brute force
    parent = list(range(30))

    def root(k):
        return k if parent[k] == k else root(parent[k])
    for i in range(30):
        for j in range(i + 1, 30):
            if prints[i] is None or prints[j] is None:
                continue
            same = prints[i][0] == prints[j][0]
            if same or np.sqrt(np.mean((prints[i][1].astype(np.float64) - prints[j][1]) ** 2)) < threshold:
                parent[max(root(i), root(j))] = min(root(i), root(j))
    expected = [root(k) for k in range(30)]
    groups = audit.duplicate_groups(prints, threshold)
    assert groups.tolist() == expected  # each image labelled with the first image of its group
    assert groups[2] == groups[7] == groups[11] == 2 and groups[14] == 9 and groups[16] == 16 and groups[20] == 5


def test_the_summary_lists_label_conflicts_and_leaks_before_plain_copies():
    from pipeline.audit import summary

    plain = {"examples": ["cat/a.jpg", "cat/b.jpg"], "labels": ["cat", "cat"], "leak": False, "label_conflict": False}
    conflict = {"examples": ["cat/c.jpg", "non-cat/c.jpg"], "labels": ["cat", "non-cat"], "leak": False,
                "label_conflict": True}
    result = {"balance": {}, "near_distance": 0.02,
              "exact_duplicates": {"groups": 12, "leaks": 0, "label_conflicts": 1, "listed": [plain] * 11 + [conflict]},
              "near_duplicates": {"pairs": 0, "leaks": 0, "label_conflicts": 0, "listed": []}}
    lines = summary(result, shown=3)
    assert lines[1] == "  cat/c.jpg (cat) = non-cat/c.jpg (non-cat) [label conflict]" and lines[4] == "  ... 9 more"
