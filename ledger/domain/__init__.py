"""The domain (SPEC §4): event catalogue, policy and projections.

Importing this package registers every event handler.
"""

from ledger.domain import batteries as _batteries  # noqa: F401
from ledger.domain import corrections as _corrections  # noqa: F401
from ledger.domain import grants as _grants  # noqa: F401
from ledger.domain import orgs as _orgs  # noqa: F401  (registers handlers)
from ledger.domain import parts as _parts  # noqa: F401
from ledger.domain import recalls as _recalls  # noqa: F401
from ledger.domain import warranty as _warranty  # noqa: F401
from ledger.domain.registry import Context, FlagNote, get_handler, registered_types

__all__ = ["Context", "FlagNote", "get_handler", "registered_types"]
