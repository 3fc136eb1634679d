"""Data invariants: GLUE layouts parse, splits are honest, archives are verified, metrics are GLUE's."""
import numpy as np
import pytest

from fewdims_helpers.data.archives import Archive, ArchiveError, fetch_archive
from fewdims_helpers.config import ConfigError, DataConfig
from fewdims_helpers.data.glue import GlueFormatError, read_glue_tsv
from fewdims_helpers.stats.metrics import compute_metrics
from fewdims_helpers.options import DataSources
from fewdims_helpers.data.tasks import GLUE_TASKS, TaskError, _stratified_split, duplicate_rows, get_task, load_task, \
    packaged_duplicates

from conftest import FIXTURES

GLUE = FIXTURES / "glue"


@pytest.mark.parametrize("task", GLUE_TASKS)
def test_every_glue_layout_parses(task):
    spec = get_task(task)
    dataset = load_task(task, DataSources(glue_dir=str(GLUE)))
    assert set(dataset) == {"train", "validation", "test"}
    assert set(dataset["train"].column_names) == {*spec.text_fields, "label", "idx"}
    assert len(dataset["train"]) + len(dataset["validation"]) == 10  # QQP's broken row is skipped
    labels = np.asarray(dataset["test"]["label"])
    if spec.is_regression:
        assert labels.dtype.kind == "f"
    else:
        assert set(labels.tolist()) <= set(range(spec.num_labels))
    assert not set(dataset["train"]["idx"]) & set(dataset["validation"]["idx"])


def test_quotes_inside_sentences_survive_parsing():
    columns = read_glue_tsv(GLUE / "SST-2" / "train.tsv", "sst2", ("sentence",))
    assert columns["sentence"][0] == 'The cat sat on the "mat.'
    assert columns["sentence"][1] == 'He said "hello and left'
    assert len(columns["sentence"]) == 10


def test_string_labels_map_to_hub_ids():
    mnli = read_glue_tsv(GLUE / "MNLI" / "dev_matched.tsv", "mnli", ("premise", "hypothesis"))
    assert mnli["label"] == [0, 1, 2, 0, 1, 2]  # entailment, neutral, contradiction
    rte = read_glue_tsv(GLUE / "RTE" / "dev.tsv", "rte", ("sentence1", "sentence2"))
    assert rte["label"] == [0, 1, 0, 1]  # entailment, not_entailment


def test_malformed_tsv_fails_with_file_and_line(tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two\n")
    with pytest.raises(GlueFormatError, match=r"train.tsv, line 3: malformed row"):
        read_glue_tsv(tmp_path / "RTE" / "train.tsv", "rte", ("sentence1", "sentence2"))
    with pytest.raises(GlueFormatError, match="not found; --glue-dir must hold RTE/train.tsv"):
        read_glue_tsv(tmp_path / "RTE" / "dev.tsv", "rte", ("sentence1", "sentence2"))


def test_unknown_task_fails_with_the_known_names():
    with pytest.raises(ConfigError, match="unknown task 'sst-3'; choose one of"):
        DataConfig("sst-3")
    with pytest.raises(TaskError, match="unknown task"):
        get_task("sst-3")


def test_stratified_split_is_disjoint_complete_and_seeded():
    strata = np.repeat([0, 1, 2], [50, 30, 20])
    parts = _stratified_split(strata, (0.7, 0.1, 0.2), seed=5)
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert [np.bincount(strata[p]).tolist() for p in parts] == [[35, 21, 14], [5, 3, 2], [10, 6, 4]]
    again = _stratified_split(strata, (0.7, 0.1, 0.2), seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_packaged_tasks_are_real_and_share_one_split():
    polarity = load_task("rt-polarity", DataSources(), max_train_examples=200, max_eval_examples=100,
                         max_test_examples=150)
    valence = load_task("rt-valence", DataSources(), max_train_examples=200, max_eval_examples=100,
                        max_test_examples=150)
    assert len(polarity["train"]) == 200 and len(polarity["validation"]) == 100 and len(polarity["test"]) == 150
    assert polarity["test"]["idx"] == valence["test"]["idx"]
    signs = (np.asarray(valence["test"]["label"]) > 0).astype(int)
    assert signs.tolist() == polarity["test"]["label"]
    full = load_task("rt-polarity", DataSources())
    removed = len(packaged_duplicates("rt-polarity", DataSources()))
    assert sum(len(full[s]) for s in full) == 10568 - removed  # 10,605 snippets less 37 of zero valence
    bbc = load_task("bbc-news", DataSources())
    removed = packaged_duplicates("bbc-news", DataSources())
    assert 100 <= len(removed) and sum(len(bbc[s]) for s in bbc) == 2225 - len(removed)
    assert get_task("bbc-news").num_labels == 5
    kept = set().union(*(bbc[s]["idx"] for s in bbc))
    assert kept.isdisjoint(removed.tolist())


def test_duplicate_rows_removes_planted_exact_and_near_copies():
    texts = ["Shares rose sharply in Tokyo on Monday after the bank cut rates.",
             "A new phone was launched by the company with a larger screen and battery, and it goes on sale in "
             "London and Paris next month at a lower price than its rival.",
             "shares rose sharply in tokyo on monday, after the bank cut rates",  # exact after normalising
             "The minister resigned on Friday over the expenses scandal in parliament.",
             "A new phone was launched by the company with a larger screen and battery, and it goes on sale in "
             "London and Paris next month at a lower price than its rivals.",  # near copy: one letter more
             "Rain is expected across the north of the country this weekend."]
    assert duplicate_rows(texts).tolist() == [2, 4]
    assert duplicate_rows(texts[:2] + texts[3:4]).tolist() == []


def test_wrong_checksum_is_a_one_line_error(tmp_path):
    archive = Archive("vaderSentiment", "3.3.2", "fake.tar.gz", "0" * 64)
    (tmp_path / "fake.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(ArchiveError, match="has sha256 .* expected 0000000000000000...; delete the file") as error:
        fetch_archive(archive, tmp_path)
    assert "\n" not in str(error.value)


def test_metrics_equal_hand_computed_values():
    assert compute_metrics("accuracy", [0, 1, 1, 0], [0, 1, 0, 0]) == {"accuracy": 0.75}
    # TP=1, FP=1, FN=1 -> F1 = 0.5; accuracy 3/5
    assert compute_metrics("f1_accuracy", [1, 1, 0, 0, 0], [1, 0, 1, 0, 0]) == {"f1": 0.5, "accuracy": 0.6}
    # TP=2, TN=1, FP=1, FN=0: MCC = (2*1 - 1*0) / sqrt(3*2*2*1) = 2 / sqrt(12)
    mcc = compute_metrics("matthews", [1, 1, 1, 0], [1, 1, 0, 0])["matthews_correlation"]
    assert mcc == pytest.approx(2 / np.sqrt(12))
    correlation = compute_metrics("pearson_spearman", [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 9.0])
    assert correlation["spearman"] == pytest.approx(1.0)
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0, 9.0])
    expected = ((x - x.mean()) * (y - y.mean())).sum() / np.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert correlation["pearson"] == pytest.approx(expected)


def test_the_duplicates_of_a_packaged_task_are_computed_once_and_read_back(tmp_path, monkeypatch):
    from fewdims_helpers.data import tasks

    (DataSources().cache / "archives").mkdir(parents=True, exist_ok=True)  # a machine that never fetched them
    (tmp_path / "archives").symlink_to(DataSources().cache / "archives")  # the real data, a fresh cache
    sources = DataSources(cache_dir=str(tmp_path))
    calls = []
    monkeypatch.setattr(tasks, "duplicate_rows", lambda texts: calls.append(len(texts)) or np.array([3, 5]))
    packaged_duplicates.cache_clear()
    try:
        assert packaged_duplicates("bbc-news", sources).tolist() == [3, 5] and len(calls) == 1
        packaged_duplicates.cache_clear()  # as in a new process
        assert packaged_duplicates("bbc-news", sources).tolist() == [3, 5] and len(calls) == 1
        assert len(list((tmp_path / "duplicates").glob("bbc-news-*.npz"))) == 1
        assert not list((tmp_path / "duplicates").glob(".tmp-*"))
    finally:
        packaged_duplicates.cache_clear()  # the planted rows must not reach other tests
