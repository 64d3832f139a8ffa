"""The Hetzner gateway: the only package that imports hcloud.

Callers use `from octoprovider import hetzner` and the names below; they get plain records
(`Server`, `PrimaryIP`, `Prices`) and our own exceptions (`octoprovider.core.exceptions`), never
hcloud's types. Every call goes through the shared rate budget (`budget`). With no token (DEBUG only)
the client talks to the simulated cloud in `sandbox`, which the unchanged hcloud library drives.

- `connection`: the hcloud client, its retries, the sandbox switch, hooks on every HTTP exchange
- `errors`: hcloud's errors translated into ours; which refusals certainly did nothing
- `labels`: what marks a resource as this deployment's
- `servers`, `primary_ips`, `pricing`, `project`: the calls, by resource
- `budget`: Hetzner's rate limit, shared by every process through the database
- `catalog`: regions to locations and sizes to server types, with the operators' overrides
- `models`: the rate budget row and the catalogue overrides
"""

from octoprovider.hetzner.connection import (
    SANDBOX_ENDPOINT,
    add_failure_hook,
    add_response_hook,
    client,
    is_sandbox,
    registered_hooks,
    remove_hook,
    restore_hooks,
    use_sandbox,
)
from octoprovider.hetzner.errors import refused_without_effect
from octoprovider.hetzner.labels import (
    LABEL_DEPLOYMENT,
    LABEL_ID,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    is_ours,
    managed_selector,
    ownership_labels,
)
from octoprovider.hetzner.pricing import Price, Prices, hourly_prices
from octoprovider.hetzner.primary_ips import (
    PrimaryIP,
    assign_primary_ip,
    create_primary_ip,
    delete_primary_ip,
    find_primary_ip,
    label_primary_ip,
    list_primary_ips,
    unassign_primary_ip,
)
from octoprovider.hetzner.project import check_token, forget_server_settings, server_settings_problems
from octoprovider.hetzner.servers import (
    Server,
    count_servers,
    create_server,
    delete_server,
    find_server,
    label_server,
    list_servers,
    list_servers_counted,
    power_off,
    power_on,
    reboot_server,
    rebuild_server,
    rename_server,
    server_type_architecture,
    server_type_orderable,
)

__all__ = [
    "LABEL_DEPLOYMENT",
    "LABEL_ID",
    "LABEL_MANAGED_BY",
    "MANAGED_BY",
    "SANDBOX_ENDPOINT",
    "Price",
    "Prices",
    "PrimaryIP",
    "Server",
    "add_failure_hook",
    "add_response_hook",
    "assign_primary_ip",
    "check_token",
    "client",
    "count_servers",
    "create_primary_ip",
    "create_server",
    "delete_primary_ip",
    "delete_server",
    "find_primary_ip",
    "find_server",
    "forget_server_settings",
    "hourly_prices",
    "is_ours",
    "is_sandbox",
    "label_primary_ip",
    "label_server",
    "list_primary_ips",
    "list_servers",
    "list_servers_counted",
    "managed_selector",
    "ownership_labels",
    "power_off",
    "power_on",
    "reboot_server",
    "rebuild_server",
    "refused_without_effect",
    "registered_hooks",
    "remove_hook",
    "rename_server",
    "restore_hooks",
    "server_settings_problems",
    "server_type_architecture",
    "server_type_orderable",
    "unassign_primary_ip",
    "use_sandbox",
]
