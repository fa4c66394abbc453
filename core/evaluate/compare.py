"""Two runs of one task side by side: is the difference real (``paired``: McNemar on accuracy, the paired bootstrap
on log-likelihoods and perplexity; ``core.evaluate.stats``), and why do the two numbers differ (``why_differ``: the
settings that changed, the items whose answer flips, every item's log-likelihoods next to each other)."""
from __future__ import annotations

from dataclasses import dataclass

from core.evaluate.loglik import TaskResult
from core.evaluate.stats import PairedTest, mcnemar, paired_bootstrap


def _common(a: TaskResult, b: TaskResult):
    if a.task != b.task:
        raise ValueError(f"The runs are of two tasks ({a.task}, {b.task}): compare runs of one task.")
    by_id = {i.doc_id: i for i in b.items}
    pairs = [(i, by_id[i.doc_id]) for i in a.items if i.doc_id in by_id]
    return pairs


def paired(a: TaskResult, b: TaskResult, metric: str = "acc") -> PairedTest:
    """The paired test of ``metric`` between two runs on their common items: McNemar for acc / acc_norm, the paired
    bootstrap for any per-item number (``loglik``: the gold choice's, or the text's for perplexity tasks)."""
    pairs = _common(a, b)
    if metric in ("acc", "acc_norm", "acc_bytes"):
        return mcnemar([x.metrics[metric] > 0.5 for x, _ in pairs], [y.metrics[metric] > 0.5 for _, y in pairs])
    return paired_bootstrap([_item_value(x, metric) for x, _ in pairs], [_item_value(y, metric) for _, y in pairs])


def _item_value(item, metric: str) -> float:
    if metric == "loglik":
        return item.logliks[item.gold] if item.gold is not None else item.logliks[0]
    return float(item.metrics[metric])


@dataclass(frozen=True)
class SettingChange:
    setting: str
    a: object
    b: object

    def to_dict(self) -> dict:
        return {"setting": self.setting, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class ItemDiff:
    """One item in both runs: the answer each picked, whether it was right, each choice's log-likelihood."""

    doc_id: int
    choices: tuple[str, ...]
    gold: int | None
    a_pick: int | None
    b_pick: int | None
    a_correct: bool | None
    b_correct: bool | None
    a_logliks: tuple[float, ...]
    b_logliks: tuple[float, ...]

    @property
    def flips(self) -> bool:
        return self.a_correct is not None and self.a_correct != self.b_correct

    @property
    def max_delta(self) -> float:
        return max(abs(x - y) for x, y in zip(self.a_logliks, self.b_logliks))

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "choices": list(self.choices), "gold": self.gold, "a_pick": self.a_pick,
                "b_pick": self.b_pick, "a_correct": self.a_correct, "b_correct": self.b_correct,
                "a_logliks": list(self.a_logliks), "b_logliks": list(self.b_logliks), "flips": self.flips,
                "max_delta": self.max_delta}


@dataclass(frozen=True)
class Difference:
    """Why two runs of one task give two numbers."""

    task: str
    changes: tuple[SettingChange, ...]
    items: tuple[ItemDiff, ...]
    test: PairedTest
    a_only_items: int = 0  # scored in one run only (a limit, a Stop)
    b_only_items: int = 0

    @property
    def flipped(self) -> tuple[ItemDiff, ...]:
        return tuple(i for i in self.items if i.flips)

    @property
    def sentence(self) -> str:
        changed = ", ".join(f"{c.setting} {c.a} → {c.b}" for c in self.changes) or "no setting"
        parts = [f"Between the two runs {changed} changed; {len(self.flipped)} of {len(self.items):,} items flip."]
        if self.a_only_items or self.b_only_items:
            parts.append(f"{self.a_only_items + self.b_only_items} items were scored in one run only and are left "
                         "out of the comparison.")
        if not self.changes and self.items and max(i.max_delta for i in self.items) > 1e-3:
            parts.append("The settings are the same but the log-likelihoods are not: the model or its kernels "
                         "differ.")
        parts.append(self.test.sentence)
        return " ".join(parts)

    def to_dict(self) -> dict:
        return {"task": self.task, "changes": [c.to_dict() for c in self.changes],
                "items": [i.to_dict() for i in self.items], "test": self.test.to_dict(),
                "flipped": len(self.flipped), "sentence": self.sentence}


def why_differ(a: TaskResult, b: TaskResult) -> Difference:
    """The settings that differ, every common item side by side (flipped items first) and the paired test of the
    task's headline metric (acc, else the text's log-likelihood)."""
    pairs = _common(a, b)
    sa, sb = a.settings.to_dict(), b.settings.to_dict()
    changes = tuple(SettingChange(k, sa[k], sb[k]) for k in sa if sa[k] != sb[k])
    rows = []
    for x, y in pairs:
        mc = x.gold is not None
        rows.append(ItemDiff(x.doc_id, x.choices, x.gold, x.predicted, y.predicted,
                             bool(x.metrics["acc"]) if mc else None, bool(y.metrics["acc"]) if mc else None,
                             x.logliks, y.logliks))
    rows.sort(key=lambda r: (not r.flips, r.doc_id))
    metric = "acc" if a.output_type in ("multiple_choice", "loglikelihood") else "loglik"
    ids_a, ids_b = {i.doc_id for i in a.items}, {i.doc_id for i in b.items}
    return Difference(a.task, changes, tuple(rows), paired(a, b, metric), len(ids_a - ids_b), len(ids_b - ids_a))
