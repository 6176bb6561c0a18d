"""Infrastructure. The runtime packages under lambdas/ are importable here as they are in Lambda
(``ai_gateway``, ``shared``, ...), so a stack and its handler share one contract module each:
``lambdas/<package>/contract.py`` (lambdas/shared/contract.py says how)."""

import sys
from pathlib import Path

_LAMBDAS = str(Path(__file__).resolve().parent.parent / "lambdas")
if _LAMBDAS not in sys.path:
    sys.path.append(_LAMBDAS)
