from octoprovider import __version__
from octoprovider import hetzner as gateway
from octoprovider.operations.cloud import real_cloud_banner


def hetzner(request):
    """Tell every admin page which Hetzner Cloud is behind it: the simulated one, or a real one while DEBUG."""
    # The banner's figures are read only by a page that shows them (a template calls the callable).
    return {"hetzner_sandbox": gateway.is_sandbox(), "hetzner_real": real_cloud_banner}


def version(request):
    """The version every console page shows in its footer, for bug reports."""
    return {"octoprovider_version": __version__}
