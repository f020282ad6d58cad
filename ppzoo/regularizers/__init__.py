"""Fine-tuning regularizers for pre-trained language models, composed with any task loss.

``FineTuneTrainer`` (``trainer: {type: FineTuneTrainer}``) builds the config's
``regularizer:`` section from the ``REGULARIZERS`` registry.  Each regularizer computes the
whole step loss (task loss + its term) so it can reuse the forward pass it needs:

- ``NoRegularizer``: plain fine-tuning.
- ``LNSR``: layerwise noise stability (Hua et al. 2021/2022): noise injected at one layer's
  output, penalising how far every layer above (and the output) moves.
- ``L2SP``: squared distance of the weights to the pre-trained ones (Li et al. 2018).
- ``Mixout``: each pre-trained Linear weight is mixed with its pre-trained value at rate p
  during training (Lee et al. 2020).
- ``SMART``: adversarial smoothness on the embeddings plus a Bregman proximal term to a
  momentum copy of the model (Jiang et al. 2020).

Models must expose ``hidden_states``, ``run_from``, ``head`` and ``divergence``
(``ppzoo.nlp.models``).  See docs/lnsr.md.
"""
from .regularizers import (L2SP, LNSR, REGULARIZERS, SMART, Mixout, NoRegularizer,  # noqa: F401
                           Regularizer)
from .trainer import FineTuneTrainer  # noqa: F401
