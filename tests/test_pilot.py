"""The paper profile, piloted end to end: a small randomly initialised BERT in a local model folder,
read like bert-base-uncased would be, on GLUE files in the original layout (a sentence-pair task and a
regression task), with run_all.py's caps on examples, epochs and seeds. Every notebook must run."""
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fewdims_helpers.model.pretrained import minilm_path

REPO = Path(__file__).resolve().parent.parent
WORDS = ("the cat dog sat ran on a mat house red blue big small man woman said went to market river quickly "
         "slowly green tree bird sang loud quiet night day").split()
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))


def write_glue(folder: Path, rows: int, seed: int) -> None:
    """RTE and STS-B in their original TSV layouts: headers, index columns, string and float labels."""
    rng = random.Random(seed)
    for name, header, label in (
            ("RTE", ["index", "sentence1", "sentence2", "label"],
             lambda: rng.choice(["entailment", "not_entailment"])),
            ("STS-B", ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                       "sentence2", "score"], lambda: f"{rng.uniform(0, 5):.3f}")):
        (folder / name).mkdir(parents=True)
        for split, count in (("train", rows), ("dev", rows // 2)):
            lines = ["\t".join(header)]
            for i in range(count):
                text = [sentence(rng), sentence(rng)]
                middle = ["main-captions", "MSRvid", "2012test", str(i), "none", "none"] if name == "STS-B" else []
                lines.append("\t".join([str(i), *middle, *text, label()]))
            (folder / name / f"{split}.tsv").write_text("\n".join(lines) + "\n")


def write_random_bert(folder: Path) -> None:
    """A 2-layer, hidden-32 BERT with random weights and bert-base-uncased's tokenizer (MiniLM's files)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                        max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (minilm_path() / name).exists():
            shutil.copy(minilm_path() / name, folder / name)


@pytest.mark.slow  # every notebook through run_all.py
def test_paper_profile_pilot_runs_every_notebook_on_local_glue_files(tmp_path):
    glue, model = tmp_path / "glue", tmp_path / "bert-random"
    write_glue(glue, rows=150, seed=0)
    write_random_bert(model)
    out = tmp_path / "out"
    command = [sys.executable, str(REPO / "run_all.py"), "--profile", "paper", "--model", str(model),
               "--glue-dir", str(glue), "--tasks", "rte", "stsb", "--max-train-examples", "130",
               "--max-eval-examples", "40", "--epochs", "1", "--seeds", "0", "1", "--output-dir", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=1500,
                            env={**__import__("os").environ, "FEWDIMS_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for notebook in notebooks:
        executed = json.loads((out / "notebooks" / notebook.name).read_text())
        assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert list((out / "figures").glob(f"{notebook.name[:2]}_*.csv")), notebook.name
    runs = [json.loads(p.read_text()) for p in (out / "results" / "runs").glob("*/config.json")]
    assert runs and {r["config"]["data"]["task"] for r in runs} == {"rte", "stsb"}
    assert {r["config"]["model"]["model"] for r in runs} == {str(model)}
    assert all(r["config"]["data"]["max_train_examples"] == 130 and r["config"]["train"]["epochs"] == 1 for r in runs)
    banner = "".join("".join(o.get("text", "")) for c in json.loads((out / "notebooks" / notebooks[0].name).read_text())
                     ["cells"] for o in c.get("outputs", []))
    assert "tokens per example" in banner and "rte" in banner  # the chosen lengths are shown
