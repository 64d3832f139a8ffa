"""Questions about the Hetzner project itself."""

from octoprovider.hetzner.connection import client
from octoprovider.hetzner.errors import translated


def check_token() -> None:
    """Ask Hetzner one cheap question; raise our HetznerError when the token or the API fails."""
    # Any answer but an error proves that the token is accepted.
    with translated("check HCLOUD_TOKEN"):
        client().locations.get_list(per_page=1)
