from octoprovider import hetzner as gateway


def hetzner(request):
    """Tell every admin page whether the Hetzner Cloud behind it is the simulated one."""
    return {"hetzner_sandbox": gateway.is_sandbox()}
