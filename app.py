"""Development entry point: ``flask --app app run``."""

import sys

from opmail import ConfigError, create_app

try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"opmail: {error}")
