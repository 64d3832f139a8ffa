"""Questions about the Hetzner project itself."""

from octoprovider.core.exceptions import HetznerNotFound
from octoprovider.hetzner.connection import client, generation
from octoprovider.hetzner.errors import translated

# Settings found complete, by (client generation, image, SSH keys, firewalls): they are asked about
# once per process, and again only after Hetzner refused a create (forget_server_settings).
_verified: set[tuple] = set()


def check_token() -> None:
    """Ask Hetzner one cheap question; raise our HetznerError when the token or the API fails."""
    # Any answer but an error proves that the token is accepted.
    with translated("check HCLOUD_TOKEN"):
        client().locations.get_list(per_page=1)


def server_settings_problems(*, image: str, ssh_keys: list[str], firewalls: list[str]) -> list[str]:
    """Return what the Hetzner project lacks of what every server is created with ([] when nothing).

    Costs one request per SSH key, firewall and image the first time, none once they were all found.
    Raises our HetznerError when Hetzner cannot be asked.
    """
    key = (generation(), image, tuple(ssh_keys), tuple(firewalls))
    if key in _verified:
        return []
    problems = []
    for name in ssh_keys:
        with translated(f"look up SSH key {name}"):
            if client().ssh_keys.get_by_name(name) is None:
                problems.append(f"HCLOUD_SSH_KEYS names {name!r}, which is not an SSH key of the Hetzner project")
    for name in firewalls:
        with translated(f"look up firewall {name}"):
            if client().firewalls.get_by_name(name) is None:
                problems.append(f"HCLOUD_FIREWALLS names {name!r}, which is not a firewall of the Hetzner project")
    try:
        with translated(f"look up image {image}"):
            found = (
                [client().images.get_by_id(int(image))]
                if image.isdigit()
                else (client().images.get_list(name=image).images)
            )
    except HetznerNotFound:
        found = []
    if not found:
        problems.append(f"HCLOUD_IMAGE is {image!r}, which is not an image Hetzner offers this project")
    if not problems:
        _verified.add(key)
    return problems


def forget_server_settings() -> None:
    """Ask Hetzner again next time: it refused a create, maybe because a key or image went away."""
    _verified.clear()
