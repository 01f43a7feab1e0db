"""Fixed inputs every test shares, so a test sees the same data on every day it runs.

The demo market ends "today" unless told otherwise; tests pin its last day to ``DEMO_END``
(the session sets ``QUANT_PIPELINE_DEMO_END`` to it in ``conftest.py``, and tests that build a
demo source or market resource pass it explicitly as well).
"""

from datetime import date

DEMO_END = date(2026, 11, 27)  # a Friday
DEMO_END_ISO = DEMO_END.isoformat()
