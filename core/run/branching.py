"""A small tree of generations that share a prompt: each branch re-uses another branch's tokens up to a step, picks a
different token there, and continues with the same settings and seed (core.run.generation.continue_from).

Probabilities: a branch's probability so far is the product of the model's raw probability of each of its tokens,
P(y₁…y_t | prompt) = Π p(y_i | prompt, y_<i) (the chain rule; kept as a sum of logs to avoid underflow).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from core.run.generation import GenerationResult, next_token_logits

MAX_BRANCHES = 8  # the root included: enough to compare, few enough to keep in a session's memory


class BranchError(ValueError):
    """A branch that cannot be made (full tree, step out of range, same token); the message is user-facing."""


@dataclass(frozen=True)
class Branch:
    branch_id: int
    parent_id: int | None  # None for the root (the original generation)
    fork_step: int | None  # step where this branch picked another token than its parent
    result: GenerationResult

    @property
    def log_probability(self) -> float:
        """Σ log p(token) of the model's raw probabilities (natural log; −inf if a token had p = 0)."""
        return sum(math.log(s.probability) if s.probability > 0 else -math.inf for s in self.result.steps)

    @property
    def probability(self) -> float:
        """The model's probability of the whole generated sequence given the prompt."""
        return math.exp(self.log_probability)

    def probability_at(self, step: int) -> float:
        """Probability of the first step + 1 tokens (cumulative, chain rule)."""
        steps = self.result.steps[: step + 1]
        return math.exp(sum(math.log(s.probability) if s.probability > 0 else -math.inf for s in steps))

    def to_row(self) -> dict:
        fork = self.result.steps[self.fork_step].token if self.fork_step is not None else ""
        return {
            "branch": self.branch_id, "parent": self.parent_id, "fork_step": self.fork_step, "picked_token": fork,
            "tokens": self.result.new_tokens, "log_probability": self.log_probability,
            "probability": self.probability, "mean_token_probability": self.result.mean_probability,
            "completion": self.result.completion,
        }


@dataclass
class BranchTree:
    """Branches in creation order; ``branches[0]`` is the root."""

    branches: list[Branch] = field(default_factory=list)
    limit: int = MAX_BRANCHES

    @classmethod
    def start(cls, root: GenerationResult, limit: int = MAX_BRANCHES) -> "BranchTree":
        return cls([Branch(0, None, None, root)], limit)

    @property
    def full(self) -> bool:
        return len(self.branches) >= self.limit

    def get(self, branch_id: int) -> Branch:
        for branch in self.branches:
            if branch.branch_id == branch_id:
                return branch
        raise BranchError(f"There is no branch {branch_id}.")

    def fork_prefix(self, parent_id: int, step: int, token_id: int) -> list[int]:
        """Token ids of the new branch's given part: the parent's tokens before `step`, then `token_id`."""
        if self.full:
            raise BranchError(f"The tree holds at most {self.limit} branches; remove one (or start a new "
                              "generation) before branching again.")
        parent = self.get(parent_id)
        n = len(parent.result.token_ids)
        if not 0 <= step < n:
            raise BranchError(f"Step {step} is outside branch {parent_id} (steps 0 to {n - 1}).")
        if parent.result.token_ids[step] == int(token_id):
            raise BranchError("That is the token the branch already has at this step: pick another one.")
        return parent.result.token_ids[:step] + [int(token_id)]

    def add(self, parent_id: int, step: int, result: GenerationResult) -> Branch:
        branch = Branch(max(b.branch_id for b in self.branches) + 1, parent_id, step, result)
        self.branches.append(branch)
        return branch

    def remove(self, branch_id: int) -> None:
        """Remove a branch and everything forked from it (the root stays)."""
        if branch_id == 0:
            raise BranchError("The root is the original generation; start a new one to replace it.")
        doomed = {branch_id}
        changed = True
        while changed:
            changed = False
            for b in self.branches:
                if b.parent_id in doomed and b.branch_id not in doomed:
                    doomed.add(b.branch_id)
                    changed = True
        self.branches = [b for b in self.branches if b.branch_id not in doomed]

    def rows(self) -> list[dict]:
        return [b.to_row() for b in self.branches]


def step_logits(loaded, result: GenerationResult, step: int):
    """(raw next-token logits, context ids) at one step of a result: one forward pass over prompt + tokens before it.

    Used to redraw that step's distribution after every processor (core.run.sampling.pipeline_stages); the context is
    what the repetition penalty and n-gram blocking see at that step.
    """
    if not 0 <= step < len(result.token_ids):
        raise BranchError(f"Step {step} is outside the generation (steps 0 to {len(result.token_ids) - 1}).")
    context = torch.cat([result.prompt.input_ids, torch.tensor([result.token_ids[:step]], dtype=torch.long)], dim=1)
    return next_token_logits(loaded, replace(result.prompt, input_ids=context)), context
