"""Scores of one completion against its reference.

ROUGE (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries"): n-gram (ROUGE-1, ROUGE-2) and longest
common subsequence (ROUGE-L) overlap, F1 of precision and recall, computed by Google's ``rouge-score`` (the
reimplementation of ROUGE-1.5.5 that Hugging Face ``evaluate`` wraps), lower-cased, Porter-stemmed.
"""
from __future__ import annotations

import functools
import re

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
NO_LABEL = "(none)"


@functools.lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 of ``prediction`` against ``reference`` (0–1)."""
    scores = _scorer().score(reference, prediction)  # rouge-score takes (target, prediction)
    return {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}


def first_line(completion: str) -> str:
    """The answer a completion gives: its first non-empty line (models go on with the next example)."""
    for line in completion.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def predicted_label(completion: str, labels) -> str:
    """The first of ``labels`` the completion's words name (case-insensitive), or NO_LABEL."""
    wanted = {label.lower(): label for label in labels}
    for word in re.findall(r"[A-Za-z]+", completion):
        if word.lower() in wanted:
            return wanted[word.lower()]
    return NO_LABEL


def exact_match(prediction: str, reference: str) -> bool:
    """Equal after lower-casing and collapsing whitespace and trailing punctuation."""
    def norm(text: str) -> str:
        return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!?")
    return norm(prediction) == norm(reference)
