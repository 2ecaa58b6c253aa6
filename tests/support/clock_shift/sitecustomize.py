# Imported by every Python subprocess the tests start when the suite is moved in time
# (BEELINE_MISSED_TEST_NOW): shifts its wall clock the same way as the test process's.
import os
import sys
from pathlib import Path

if os.environ.get("BEELINE_MISSED_TEST_NOW"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests.support.clock import start_travel

    start_travel()
