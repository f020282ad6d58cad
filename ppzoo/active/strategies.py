"""Query strategies: which unlabelled units (samples, queries) to label next.

A strategy gets the model outputs on the candidate units, ``outputs[i]`` for candidate
``candidates[i]``: an array whose first axis is the committee (the model's checkpoints
over the round's training, oldest first, the current model last); what the rest holds
is the task's (a query's document scores, a sample's class logits).  ``score`` returns
one informativeness value per candidate, higher first; ``select`` takes the ``n``
highest, ties broken by the smaller unit index, so a selection is deterministic.
"""
import numpy as np

from ..core.registry import Registry

STRATEGIES = Registry("active_strategies")


class QueryStrategy:
    #: False where the strategy ignores model outputs (the loop then skips predicting)
    needs_outputs = True

    def score(self, outputs, rng):
        raise NotImplementedError

    def select(self, outputs, candidates, n, rng):
        candidates = np.asarray(candidates, np.int64)
        n = min(int(n), len(candidates))
        if n <= 0:
            return []
        s = np.asarray(self.score(outputs, rng), np.float64)
        if s.shape != (len(candidates),):
            raise ValueError(f"{type(self).__name__}.score returned shape {s.shape} for "
                             f"{len(candidates)} candidates")
        s = np.where(np.isfinite(s), s, -np.inf)
        order = np.lexsort((candidates, -s))
        return [int(c) for c in candidates[order[:n]]]


@STRATEGIES.register()
class RandomStrategy(QueryStrategy):
    """Uniformly random units (the usual baseline)."""
    needs_outputs = False

    def score(self, outputs, rng):
        return rng.random(len(outputs))
