"""The server-reuse settings stop start-up on a bad value, naming the variable (tests/test_settings.py's way)."""

import pytest

from tests.test_settings import manage_check


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SERVER_REUSE": "always"}, "SERVER_REUSE"),
        ({"REUSE_MIN_LEFT": "ten"}, "REUSE_MIN_LEFT"),
        ({"REUSE_MARGIN": "30"}, "REUSE_MARGIN"),
        ({"REUSE_MIN_LEFT": "200", "REUSE_MARGIN": "240"}, "REUSE_MIN_LEFT"),
        ({"REUSE_MIN_LEFT": "3600"}, "REUSE_MIN_LEFT"),
    ],
)
def test_a_bad_reuse_setting_stops_start_up_naming_it(env, named):
    result = manage_check(DEBUG="true", **env)

    assert result.returncode != 0
    assert "configuration error" in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_reuse_can_be_turned_off_and_tuned():
    result = manage_check(DEBUG="true", SERVER_REUSE="OFF", REUSE_MIN_LEFT="900", REUSE_MARGIN="120")

    assert result.returncode == 0, result.stderr
