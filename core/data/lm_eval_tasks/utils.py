"""Loads a task's JSONL files from this folder, wherever lm_eval is started (lm-eval's ``custom_dataset``:
datasets resolves a relative ``data_files`` path against the working directory, not the YAML's folder)."""
from pathlib import Path


def load_local(data_files, **kwargs):
    import datasets

    here = Path(__file__).resolve().parent
    return datasets.DatasetDict({split: datasets.Dataset.from_json(str(here / name))
                                 for split, name in data_files.items()})
