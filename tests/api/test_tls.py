"""Mutual TLS for real: a uvicorn server on 127.0.0.1, httpx clients with and without certificates.

The certificates are made here with ``cryptography``: a client CA, a server certificate for
127.0.0.1, two clients of that CA, and a client of an unrelated CA that must be refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from uvicorn.server import ServerState

from garrison.api._tls import SCOPE_KEY, MutualTLSProtocol, client_dn, make_server, serve
from garrison.core.errors import EnvironmentProblem

ALICE_DN = "CN=alice,OU=ops,O=Garrison Test"
BOB_DN = "CN=bob,OU=analysts,O=Garrison Test"
# Every network step is bounded: a hang fails fast instead of stalling the suite.
TIMEOUT_S = 5.0


# --- certificates -------------------------------------------------------------------------------


def _name(*parts: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    extensions: list[x509.ExtensionType] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        # OpenSSL 3 rejects a CA without keyCertSign when it verifies a chain.
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    for extension in extensions or []:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pair:
    """A certificate and key on disk."""

    cert: Path
    key: Path


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Any) -> Pair:
    pair = Pair(directory / f"{stem}.pem", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pair


@dataclass(frozen=True)
class Pki:
    """The test certificates: ``ca`` signs the server, alice and bob; ``mallory`` is foreign."""

    ca: Pair
    server: Pair
    alice: Pair
    bob: Pair
    mallory: Pair


def _client(
    directory: Path, stem: str, subject: x509.Name, ca: x509.Certificate, ca_key: Any
) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    cert = _issue(subject, key, ca.subject, ca_key, ca=False, extensions=[eku])
    return _write(directory, stem, cert, key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Generate the CAs and certificates once for the module (EC keys: milliseconds)."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name((NameOID.ORGANIZATION_NAME, "Garrison Test"), (NameOID.COMMON_NAME, "Test CA"))
    ca = _issue(ca_name, ca_key, ca_name, ca_key, ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_name = _name((NameOID.COMMON_NAME, "Other CA"))
    other = _issue(other_name, other_key, other_name, other_key, ca=True)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(
        _name((NameOID.COMMON_NAME, "127.0.0.1")),
        server_key,
        ca_name,
        ca_key,
        ca=False,
        extensions=[
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ],
    )
    # RFC 4514 writes the RDNs last-first, so the certificate lists O, OU, CN in that order.
    alice = _name(
        (NameOID.ORGANIZATION_NAME, "Garrison Test"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "ops"),
        (NameOID.COMMON_NAME, "alice"),
    )
    bob = _name(
        (NameOID.ORGANIZATION_NAME, "Garrison Test"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "analysts"),
        (NameOID.COMMON_NAME, "bob"),
    )
    return Pki(
        ca=_write(directory, "ca", ca, ca_key),
        server=_write(directory, "server", server_cert, server_key),
        alice=_client(directory, "alice", alice, ca, ca_key),
        bob=_client(directory, "bob", bob, ca, ca_key),
        # Alice's subject from another CA: only the issuer tells them apart, which is the point.
        mallory=_client(directory, "mallory", alice, other, other_key),
    )


# --- the server under test ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Running:
    """A running server: its base URL and the DNs the app saw, one entry per request."""

    url: str
    seen: list[str | None]


@pytest.fixture(scope="module")
def running(pki: Pki) -> Iterator[Running]:
    """Serve a DN-echoing Starlette app on 127.0.0.1 in a thread; stop and join it after."""
    seen: list[str | None] = []

    async def whoami(request: Request) -> JSONResponse:
        seen.append(client_dn(request.scope))
        return JSONResponse(
            {"raw": request.scope.get(SCOPE_KEY), "helper": client_dn(request.scope)}
        )

    app = Starlette(routes=[Route("/whoami", whoami)])
    port = _free_port()
    ready = threading.Event()
    server = make_server(
        app,
        "127.0.0.1",
        port,
        str(pki.server.cert),
        str(pki.server.key),
        str(pki.ca.cert),
        ready=ready,
    )
    thread = threading.Thread(target=server.run, name="tls-test-server", daemon=True)
    thread.start()
    try:
        assert ready.wait(TIMEOUT_S), "the server did not start listening"
        yield Running(f"https://127.0.0.1:{port}", seen)
    finally:
        server.should_exit = True
        thread.join(TIMEOUT_S)
        assert not thread.is_alive(), "the server did not stop"


def _context(
    pki: Pki, client: Pair | None, version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    # An SSLContext rather than httpx's verify=<path>/cert=..., which 0.28 deprecates.
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


def _get(
    pki: Pki, running: Running, client: Pair | None, version: ssl.TLSVersion | None = None
) -> httpx.Response:
    with httpx.Client(verify=_context(pki, client, version), timeout=TIMEOUT_S) as http:
        return http.get(f"{running.url}/whoami")


# How a refused client certificate looks from the client depends on the TLS version. asyncio's
# TLS layer closes the connection without sending an alert, so: with TLS 1.2 the client's
# handshake fails (ConnectError); with TLS 1.3 the client finishes its side of the handshake
# before the server checks the certificate, and then sees the connection close with no response.
REFUSED: dict[ssl.TLSVersion, type[httpx.TransportError]] = {
    ssl.TLSVersion.TLSv1_2: httpx.ConnectError,
    ssl.TLSVersion.TLSv1_3: httpx.RemoteProtocolError,
}


# --- tests --------------------------------------------------------------------------------------


def test_verified_client_dn_reaches_the_scope_exactly(pki: Pki, running: Running) -> None:
    response = _get(pki, running, pki.alice)
    assert response.status_code == 200
    assert response.json() == {"raw": ALICE_DN, "helper": ALICE_DN}


def test_each_connection_carries_its_own_dn(pki: Pki, running: Running) -> None:
    # Two requests on one kept-alive connection, interleaved with another client's connection:
    # the DN is bound per connection, so nothing may leak from one to the other.
    with (
        httpx.Client(verify=_context(pki, pki.alice), timeout=TIMEOUT_S) as alice,
        httpx.Client(verify=_context(pki, pki.bob), timeout=TIMEOUT_S) as bob,
    ):
        dns = [
            alice.get(f"{running.url}/whoami").json()["raw"],
            bob.get(f"{running.url}/whoami").json()["raw"],
            alice.get(f"{running.url}/whoami").json()["raw"],
        ]
    assert dns == [ALICE_DN, BOB_DN, ALICE_DN]


@pytest.mark.parametrize("version", list(REFUSED), ids=["tls1.2", "tls1.3"])
@pytest.mark.parametrize("who", ["other-ca", "no-certificate"])
def test_unverified_clients_are_refused_at_the_handshake(
    pki: Pki, running: Running, who: str, version: ssl.TLSVersion
) -> None:
    before = len(running.seen)
    client = pki.mallory if who == "other-ca" else None
    with pytest.raises(REFUSED[version]):
        _get(pki, running, client, version)
    assert len(running.seen) == before, "the app must never run for an unverified client"
    # The server survives the refusal and still serves a verified client on that TLS version.
    assert _get(pki, running, pki.alice, version).json()["raw"] == ALICE_DN


def test_plain_http_is_not_served(running: Running) -> None:
    before = len(running.seen)
    with (
        pytest.raises(httpx.TransportError),
        httpx.Client(timeout=TIMEOUT_S) as http,
    ):
        http.get(running.url.replace("https://", "http://") + "/whoami")
    assert len(running.seen) == before


# --- the pieces, without a network --------------------------------------------------------------


def test_client_dn_reads_only_a_string() -> None:
    assert client_dn({SCOPE_KEY: ALICE_DN}) == ALICE_DN
    assert client_dn({}) is None
    assert client_dn({SCOPE_KEY: b"CN=alice"}) is None


class _FakeTransport(asyncio.Transport):
    """A transport with chosen extra info (``ssl_object`` and nothing else)."""

    def __init__(self, ssl_object: object | None) -> None:
        super().__init__()
        self._ssl_object = ssl_object

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._ssl_object if name == "ssl_object" else default


class _NoPeerCert:
    """An SSL object whose handshake verified no certificate (CERT_NONE/OPTIONAL servers)."""

    def getpeercert(self, binary_form: bool = False) -> None:
        return None


@pytest.mark.parametrize("ssl_object", [None, _NoPeerCert()], ids=["plain-tcp", "no-peer-cert"])
def test_connection_without_verified_certificate_gets_no_dn(ssl_object: object | None) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    config = uvicorn.Config(app, http=MutualTLSProtocol, lifespan="off")
    config.load()
    loop = asyncio.new_event_loop()
    try:
        protocol = MutualTLSProtocol(config, ServerState(), {}, _loop=loop)
        protocol.connection_made(_FakeTransport(ssl_object))
        # The app was not wrapped: its scopes will carry no garrison.client_dn at all.
        assert protocol.app is config.loaded_app
    finally:
        loop.close()


def test_unreadable_tls_files_are_a_friendly_error(pki: Pki, tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.pem")
    with pytest.raises(EnvironmentProblem, match="Could not load the TLS files"):
        make_server(Starlette(), "127.0.0.1", 0, missing, str(pki.server.key), str(pki.ca.cert))


def test_serve_reports_a_port_in_use(pki: Pki) -> None:
    started = time.monotonic()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(EnvironmentProblem, match=f"127.0.0.1:{port}"):
            serve(
                Starlette(),
                "127.0.0.1",
                port,
                str(pki.server.cert),
                str(pki.server.key),
                str(pki.ca.cert),
            )
    assert time.monotonic() - started < TIMEOUT_S


def test_the_real_api_over_mutual_tls(pki: Pki, tmp_path: Path) -> None:
    """The shipped path end to end: `create_app` behind `make_server`, a user mapped by DN."""
    from garrison.api import create_app
    from garrison.store.session import SubjectSpec
    from garrison.store.workspace import Workspace

    root = tmp_path / "ws"
    ws = Workspace.init(root, system_high="SECRET//NOFORN")
    try:
        ws.session().add_user(
            "alice",
            SubjectSpec(clearance="S", roles=("viewer",), dn="CN=alice,OU=ops,O=Garrison Test"),
        )
    finally:
        ws.close()
    port = _free_port()
    ready = threading.Event()
    server = make_server(
        create_app(root),
        "127.0.0.1",
        port,
        str(pki.server.cert),
        str(pki.server.key),
        str(pki.ca.cert),
        ready=ready,
    )
    thread = threading.Thread(target=server.run, name="tls-api-server", daemon=True)
    thread.start()
    try:
        assert ready.wait(TIMEOUT_S), "the API server did not start listening"
        url = f"https://127.0.0.1:{port}/v1/me"
        with httpx.Client(verify=_context(pki, pki.alice), timeout=TIMEOUT_S) as http:
            me = http.get(url)
        assert me.status_code == 200, me.text
        assert me.json()["name"] == "alice"
        assert me.headers["X-Garrison-Marking"]
        # Bob's certificate is valid, but no user has his DN: 401 in the one error shape.
        with httpx.Client(verify=_context(pki, pki.bob), timeout=TIMEOUT_S) as http:
            denied = http.get(url)
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "unauthenticated"
    finally:
        server.should_exit = True
        thread.join(TIMEOUT_S)
        assert not thread.is_alive(), "the API server did not stop"
    with Workspace.open(root) as reopened:
        events = reopened.audit.tail(None)
    assert any(e.action == "login" and e.decision == "deny" for e in events)
