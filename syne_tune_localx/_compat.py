"""Import syne-tune's ``TrialBackend`` without its side effect.

Importing anything under ``syne_tune.backend`` runs that package's
``__init__``, which imports ``LocalBackend``, which sets ``OMP_NUM_THREADS=1``
for the whole process. Importing our package must change no environment
variable, so we undo exactly what that import did.
"""

import os
import sys

_first_import = "syne_tune.backend" not in sys.modules
_before = os.environ.get("OMP_NUM_THREADS")

from syne_tune.backend.trial_backend import BUSY_STATUS, TrialBackend  # noqa: E402
from syne_tune.backend.trial_status import Status, TrialResult  # noqa: E402
from syne_tune.constants import ST_WORKER_TIMESTAMP  # noqa: E402

if _first_import and _before is None:
    os.environ.pop("OMP_NUM_THREADS", None)

__all__ = ["BUSY_STATUS", "ST_WORKER_TIMESTAMP", "Status", "TrialBackend", "TrialResult"]
