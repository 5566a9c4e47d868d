"""What the prune stage did, also kept in the pruned model's record under `pruning`."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import KdeployError
from ..metrics import Scores
from ..modelio.record import ModelRecord
from ..results import Result, pct


@dataclass
class PruneResult(Result):
    eval_split: str
    config: dict
    before: Scores
    after: Scores
    parameters_before: int
    parameters: int
    agreement: float  # of the pruned model's predictions with the unpruned model's
    accuracy_change_points: float
    seconds: float
    vocab: dict | None = None  # vocab_before, vocab_after, texts, embedding_parameters_removed
    eval_token_coverage: float | None = None
    heads: dict | None = None  # heads_before, heads_after, pruned, importance
    ffn: dict | None = None  # width_before, width_after, layers, importance_kept
    after_head_pruning: Scores | None = None
    after_width_pruning: Scores | None = None
    recovery: dict | None = None
    title = "prune"

    @classmethod
    def of_folder(cls, folder) -> "PruneResult":
        """The pruned model's record, typed (its `pruning` part)."""
        pruning = ModelRecord.of(folder).pruning
        if pruning is None:
            raise KdeployError(f"{folder}: not a pruned model (its kdeploy.json has no pruning record); prune it again")
        return cls.from_dict(pruning)

    def table(self):
        rows = [["before", f"{self.parameters_before:,}", self.before.cells(1)[0], "", ""],
                ["after", f"{self.parameters:,}", self.after.cells(1)[0], pct(self.agreement),
                 f"{self.accuracy_change_points:+.2f}"]]
        from ..metrics import TITLES

        return ["model", "parameters", f"{self.eval_split} {TITLES.get(self.after.metric, self.after.metric)}",
                "agreement", "change (pts)"], rows

    def summary_line(self) -> str:
        parts = []
        if self.heads:
            parts.append(f"heads {self.heads['heads_before']} → {self.heads['heads_after']}")
        if self.ffn:
            parts.append(f"feed-forward width {self.ffn['width_before']} → {self.ffn['width_after']}")
        if self.vocab:
            parts.append(f"vocabulary {self.vocab['vocab_before']} → {self.vocab['vocab_after']} tokens")
        return "; ".join(parts)
