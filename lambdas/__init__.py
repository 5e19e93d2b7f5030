"""Lambda handlers of the platform. Each subpackage is one function or one group of functions;
`common` is shared by all of them and is bundled into every asset."""

from lambdas.common import lazy_packages

# Before any handler imports Powertools: its catch-all initialisers load on first use instead
# (lambdas/common/lazy_packages.py says what that saves).
lazy_packages.install()
