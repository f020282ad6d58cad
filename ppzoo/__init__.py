"""ppzoo: a PaddlePaddle model zoo of 2022 research methods, driven by YAML configs.

Importing ppzoo registers every component.  Method packages import their heavy
third-party libraries (paddleseg, paddlenlp, ray) inside the functions that need
them, so ``import ppzoo`` stays fast.
"""
__version__ = "0.1.0"

from . import core  # noqa: F401
from . import transforms, datasets, models, losses, metrics  # noqa: F401,E402
from . import segmentation, pssl, video, distill, nlp, regularizers  # noqa: F401,E402
from . import active, ranking  # noqa: F401,E402
from . import continual  # noqa: F401,E402
from .engine import Trainer, build_trainer  # noqa: F401,E402
from . import localization  # noqa: F401,E402
from . import federated  # noqa: F401,E402
