"""The packaged demo experiment: ``syne-tune-localx run`` without a file runs it.

:data:`DEMO_EXPERIMENT` tunes a linear classifier on scikit-learn's digits
(:mod:`syne_tune_localx.demo.digits_sgd`) with ASHA. To start an experiment
of your own, copy both files from this folder and edit the copy.
"""

from pathlib import Path

DEMO_FOLDER = Path(__file__).parent
DEMO_EXPERIMENT = DEMO_FOLDER / "digits.yaml"
DEMO_REQUIREMENTS = ("sklearn",)
"""Modules the demo's training script needs beyond syne-tune-localx itself."""
