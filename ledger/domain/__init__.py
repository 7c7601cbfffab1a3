"""The domain (SPEC §4): event catalogue, policy and projections.

Importing this package registers every event handler.
"""

from ledger.domain import orgs as _orgs  # noqa: F401  (registers handlers)
from ledger.domain.registry import Context, FlagNote, get_handler, registered_types

__all__ = ["Context", "FlagNote", "get_handler", "registered_types"]
