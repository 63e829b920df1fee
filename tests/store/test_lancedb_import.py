"""lancedb imported with the namespace REST client's package ``__init__`` deferred."""

from __future__ import annotations

from tests.cli.test_lazy_commands import _modules_after


def test_the_lancedb_import_defers_the_namespace_client_and_keeps_it_usable() -> None:
    loaded = _modules_after(
        "import sys\n"
        "from garrison.store._lancedb import import_lancedb\n"
        "lancedb = import_lancedb()\n"
        "assert callable(lancedb.connect)\n"
        "assert not any(m.startswith('lance_namespace_urllib3_client.api.') for m in sys.modules)\n"
        # The package's own names still resolve: its __init__ runs on first use.
        "import lance_namespace_urllib3_client as client\n"
        "assert client.ApiClient.__name__ == 'ApiClient'"
    )
    assert {"lancedb", "lance_namespace_urllib3_client.api.table_api"} <= loaded
