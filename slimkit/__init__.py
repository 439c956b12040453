"""slimkit: add LLM reasoning to sequential recommendation cheaply (the SLIM method).

Everything the CLI does is available here. Heavy libraries load only when used.
"""

from slimkit._version import __version__
from slimkit.runtime import configure_environment

configure_environment()

from slimkit.errors import ConfigError, SlimkitError  # noqa: E402
from slimkit.registry import registry  # noqa: E402
from slimkit.spec import PipelineSpec, load_spec, validate_spec  # noqa: E402

__all__ = [
    "ConfigError",
    "PipelineSpec",
    "SlimkitError",
    "__version__",
    "load_spec",
    "registry",
    "validate_spec",
]
