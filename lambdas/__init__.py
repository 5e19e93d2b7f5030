"""Lambda handlers of the platform. Each subpackage is one function or one group of functions;
`common` is shared by all of them and is bundled into every asset."""
