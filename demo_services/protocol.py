"""Names shared by the launcher and the services, kept free of heavy imports.

The launcher runs inside ``spyglass demo`` and stays small by importing only this module
and ``requests`` from the demo package.
"""

CONTROL_TOKEN_HEADER = "X-Spyglass-Control-Token"

CONTROL_TOKEN_FILE = "control-token"
"""The control token's file in the demo's directory (``<data dir>/demo/``), mode 0600."""

OUT_OF_SERVICE_HEADER = "X-Spyglass-Out-Of-Service"
"""Set on the 503 of a stopped instance: it handled nothing, so callers may try another."""
