"""Settings for the test suite: the real settings, with the environment a developer's machine has.

Every test talks to a fresh in-memory Hetzner sandbox (tests/conftest.py); none reaches Hetzner.
"""

import os

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
# OctoPerf's token in the tests (tests/conftest.py TOKEN), and a second one.
TEST_TOKENS = ["test-token-0123456789abcdef0123456789", "second-token-abcdefabcdefabcdefabcdef"]
os.environ["OCTOPERF_API_TOKENS"] = ",".join(TEST_TOKENS)
os.environ.pop("HCLOUD_TOKEN", None)

from octoprovider.settings import *  # noqa: E402, F403

# hcloud's own retries must not sleep in tests.
HCLOUD_RETRY_BACKOFF = 0.0
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Static files are not collected for tests; WhiteNoise need not look for them.
STATIC_ROOT = None
# Tests read a state right after changing it; tests/api/test_state_snapshot.py covers the snapshot.
STATE_SNAPSHOT_SECONDS = 0.0
# Most tests let simulated hours pass without polling what they created; tests/services/test_unclaimed.py
# turns the ending of never-claimed instances on.
UNCLAIMED_INSTANCE_GRACE = 0
# Most tests delete what they created and look for the delete at Hetzner; tests/services/test_reuse*.py
# and bench/reuse_day.py turn server reuse on.
SERVER_REUSE = "off"
