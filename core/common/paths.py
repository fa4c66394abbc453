"""Where the project's files are: the repository root and the bundled data folder (``core/data``)."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "core" / "data"
