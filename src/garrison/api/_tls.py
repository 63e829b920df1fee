"""Serve an ASGI app over mutual TLS and hand the verified client's subject DN to the app.

uvicorn verifies client certificates when asked (``ssl_cert_reqs=CERT_REQUIRED``) but does not
pass the certificate to the application (uvicorn issues #745, #1119). This module closes that
gap inside the server's protocol layer, so no reverse proxy or trusted header is involved:

* :class:`MutualTLSProtocol` subclasses uvicorn's h11 protocol. When a connection is made --
  which asyncio does only after the TLS handshake, so after the client certificate was verified
  against ``client_ca`` -- it reads the peer certificate from the transport's ``SSLObject`` and
  wraps the app for that connection.
* The wrapper puts the subject DN (RFC 4514, as :mod:`cryptography` writes it) into every
  request scope of that connection as ``scope["garrison.client_dn"]``; :func:`client_dn` reads
  it back. A connection without a verified certificate gets no key at all, never an empty one.

:func:`serve` runs the server until it is stopped; :func:`make_server` builds it without running,
for callers (tests, the CLI) that need the :class:`uvicorn.Server` handle to stop it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

from garrison.core.errors import EnvironmentProblem

__all__ = ["SCOPE_KEY", "MutualTLSProtocol", "client_dn", "make_server", "serve"]

#: The ASGI scope key that carries the verified client's subject DN.
SCOPE_KEY = "garrison.client_dn"

# ASGI types, spelled out here rather than imported from uvicorn's private ``_types``.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def client_dn(scope: Scope) -> str | None:
    """Return the verified client certificate's subject DN (RFC 4514), or ``None`` if absent.

    ``None`` means the request did not arrive through :func:`serve` with a verified
    certificate; callers must treat it as unauthenticated.
    """
    value = scope.get(SCOPE_KEY)
    return value if isinstance(value, str) else None


def _peer_dn(transport: asyncio.BaseTransport) -> str | None:
    """The subject DN of the transport's verified peer certificate, or ``None``."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:  # a plain-TCP transport: nothing was verified
        return None
    # ``getpeercert`` returns a certificate only once the handshake verified it; with
    # CERT_NONE or CERT_OPTIONAL and no certificate sent it returns None, which must not
    # turn into an identity.
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def _with_client_dn(app: ASGIApp, dn: str) -> ASGIApp:
    """Wrap ``app`` so that every scope it receives carries ``dn`` under :data:`SCOPE_KEY`."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        # A copy, so the server's own scope object stays as uvicorn built it.
        await app({**scope, SCOPE_KEY: dn}, receive, send)

    return wrapper


class MutualTLSProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus the verified client DN in each request's scope.

    One instance serves one connection, and a TLS connection has one peer certificate for its
    whole life, so the DN is read once, when the connection is made.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Set up the connection as uvicorn does, then bind the peer's DN to the app."""
        super().connection_made(transport)
        dn = _peer_dn(transport)
        if dn is not None:
            # Without a verified certificate the plain app runs and its scopes carry no key,
            # so "absent" can never be mistaken for an identity.
            self.app = _with_client_dn(self.app, dn)


class _Server(uvicorn.Server):
    """A :class:`uvicorn.Server` that signals ``ready`` once its socket is listening."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event | None) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[Any] | None = None) -> None:
        """Start listening, then set ``ready`` (only if startup succeeded)."""
        await super().startup(sockets=sockets)
        if self.started and self._ready is not None:
            self._ready.set()


def make_server(
    app: ASGIApp,
    host: str,
    port: int,
    certfile: str,
    keyfile: str,
    client_ca: str,
    *,
    ready: threading.Event | None = None,
) -> uvicorn.Server:
    """Build (not run) a uvicorn server for ``app`` that requires client certificates.

    Client certificates are verified against the CA bundle ``client_ca``; a client without one,
    or with one from another CA, fails the TLS handshake and never reaches ``app``. Call
    ``server.run()`` to serve (it blocks) and set ``server.should_exit = True`` from another
    thread to stop. ``ready`` is set once the socket is listening.

    Raises:
        EnvironmentProblem: a certificate, key or CA file is missing or unreadable.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        ssl_ca_certs=client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED,
        http=MutualTLSProtocol,
        # WebSocket upgrades would hand the connection to another protocol class that does not
        # add the DN; with none configured, upgrade requests are served as plain HTTP.
        ws="none",
        # No proxy sits in front of this server: X-Forwarded-For from a client is not to be
        # believed, not even from loopback.
        proxy_headers=False,
        # Pinned so the event loop that runs is the one the tests exercise.
        loop="asyncio",
        lifespan="off",
        log_level="warning",
        # No access log: a request line holds ids and search queries (see _metrics).
        access_log=False,
    )
    try:
        # Loading now builds the SSL context, so a bad file fails here, in the caller's thread,
        # instead of killing the server thread later.
        config.load()
    except OSError as exc:  # ssl.SSLError and FileNotFoundError are both OSErrors
        raise EnvironmentProblem(
            f"Could not load the TLS files (certificate {certfile!r}, key {keyfile!r}, "
            f"client CA {client_ca!r}): {exc}. Check that they exist and are PEM files."
        ) from exc
    return _Server(config, ready)


def serve(
    app: ASGIApp,
    host: str,
    port: int,
    certfile: str,
    keyfile: str,
    client_ca: str,
    *,
    ready: threading.Event | None = None,
) -> None:
    """Serve ``app`` over HTTPS with required, CA-verified client certificates; blocks.

    Each request's scope carries the client's subject DN (read it with :func:`client_dn`).
    ``ready`` is set once the socket is listening. Stops on SIGINT/SIGTERM when run in the main
    thread; use :func:`make_server` for a handle that can be stopped from elsewhere.

    Raises:
        EnvironmentProblem: the TLS files cannot be loaded, or the address cannot be bound.
    """
    server = make_server(app, host, port, certfile, keyfile, client_ca, ready=ready)
    try:
        server.run()
    except SystemExit as exc:
        # uvicorn logs a bind failure and calls sys.exit(1); outside its own CLI that would end
        # the caller's thread (or process) with no explanation.
        if server.started:
            raise
        raise EnvironmentProblem(
            f"Could not listen on {host}:{port}; is another server using that port?"
        ) from exc
