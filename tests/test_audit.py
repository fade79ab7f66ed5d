"""The audit's pure parts against brute force."""
import numpy as np

from pipeline import audit


def test_near_pairs_match_a_brute_force_search_across_blocks(monkeypatch):
    monkeypatch.setattr(audit, "BLOCK", 7)  # several blocks, so pairs across block borders are exercised
    rng = np.random.default_rng(0)
    T = rng.random((40, 12)).astype(np.float32)
    T[25] = T[3] + 0.01  # planted near copies
    T[39] = T[30] - 0.02
    threshold = 0.05
    expected = {(i, j) for i in range(40) for j in range(i + 1, 40)
                if np.sqrt(np.mean((T[i].astype(np.float64) - T[j]) ** 2)) < threshold}
    found = audit.near_pairs(T, threshold)
    assert {(i, j) for i, j, _ in found} == expected == {(3, 25), (30, 39)}
    assert all(abs(d - np.sqrt(np.mean((T[i] - T[j]) ** 2))) < 1e-5 for i, j, d in found)


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
