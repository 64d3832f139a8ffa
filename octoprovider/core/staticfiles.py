"""The admin's static files: hashed and compressed once `collectstatic` ran, plain until then."""

import logging

from whitenoise.storage import CompressedManifestStaticFilesStorage

logger = logging.getLogger(__name__)


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's manifest storage that survives a forgotten `collectstatic`.

    Without a manifest, Django's manifest storage raises on a page's first `{% static %}`, and every
    admin page answers 500. Here the file's own name is used instead (settings then let WhiteNoise
    serve it from the apps' directories), and the log says once what to run.
    """

    _warned = False

    def stored_name(self, name: str) -> str:
        if not self.hashed_files:
            if not StaticFilesStorage._warned:
                StaticFilesStorage._warned = True
                logger.warning(
                    "Static files are not collected (no %s in %s): serving them from the apps' directories, "
                    "uncompressed and not cached for long. Run `manage.py collectstatic --noinput`.",
                    self.manifest_name,
                    self.location,
                )
            return name
        return super().stored_name(name)
