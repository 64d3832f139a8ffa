"""gunicorn.conf.py: what each web worker does once it has loaded octoprovider."""

import gc
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_a_worker_puts_what_it_loaded_out_of_the_garbage_collectors_reach():
    # A full collection walks every tracked object while the worker's threads wait: after loading
    # Django, DRF and the admin that was the slowest state polls' extra tens of milliseconds.
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    try:
        config["post_worker_init"](None)

        assert gc.get_freeze_count() > 0
        assert "octoprovider.urls" in sys.modules  # loaded before, not at the first request
    finally:
        gc.unfreeze()
