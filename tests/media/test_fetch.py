"""The safe fetcher against real local servers on 127.0.0.2 (allowlisted) and 127.0.0.1 (never reached)."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from ipaddress import IPv4Network, ip_address
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from herald.media.fetch import FetchError, FetchLimits, SafeFetcher, check_url, default_transport
from herald.media.netguard import AddressPolicy, IPAddress

ALLOWED = "127.0.0.2"
BODY = bytes(range(256)) * 400  # 102,400 bytes: more than one read


# A tiny HTTP/1.1 server: enough control to drip, lie and redirect.


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


App = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    host: str
    app: App
    tls: ssl.SSLContext | None = None
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            headers = dict(line.split(":", 1) for line in lines if line)
            seen = Seen(request_line.split(" ")[1], {k.lower(): v.strip() for k, v in headers.items()})
            self.seen.append(seen)
            await self.app(seen, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def respond(
    writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes = b""
) -> None:
    writer.write(head(status, headers) + body)
    await writer.drain()


async def app(req: Seen, w: asyncio.StreamWriter) -> None:
    path = req.path
    if path == "/file":
        w.write(head(200, {"Content-Length": str(len(BODY)), "Content-Type": "audio/wav"}))
        for start in range(0, len(BODY), 25_600):
            w.write(BODY[start : start + 25_600])
            await w.drain()
    elif path == "/no-length":
        await respond(w, 200, {}, BODY)
    elif path == "/host":
        await respond(w, 200, {"Content-Length": str(len(req.headers["host"]))}, req.headers["host"].encode())
    elif path == "/big-declared":
        w.write(head(200, {"Content-Length": "50000"}))
        await w.drain()
        await asyncio.sleep(60)  # the client must give up on the header alone
    elif path in ("/big-streamed", "/big-chunked"):
        chunked = path == "/big-chunked"
        w.write(head(200, {"Transfer-Encoding": "chunked"} if chunked else {}))
        for _ in range(50):
            w.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n" if chunked else b"x" * 1000)
            await w.drain()
    elif path.startswith("/redirect/"):
        n = int(path.removeprefix("/redirect/"))
        await respond(w, 302, {"Location": f"/redirect/{n - 1}" if n > 1 else "/file", "Content-Length": "0"})
    elif path.startswith("/to?"):
        await respond(w, 307, {"Location": path.removeprefix("/to?"), "Content-Length": "0"})
    elif path == "/drip":
        w.write(head(200, {"Content-Length": "100"}))
        for _ in range(100):
            w.write(b"x")
            await w.drain()
            await asyncio.sleep(0.5)
    elif path == "/trickle":
        w.write(head(200, {"Content-Length": "1000"}))
        for _ in range(1000):
            w.write(b"x")
            await w.drain()
            await asyncio.sleep(0.02)
    elif path == "/gzip":
        await respond(w, 200, {"Content-Encoding": "gzip", "Content-Length": "3"}, b"abc")
    else:
        await respond(w, 404, {"Content-Length": "0"})


# Fixtures


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server(ALLOWED, app)
    await s.start()
    yield s
    await s.close()


@pytest.fixture
async def loopback() -> AsyncIterator[Server]:
    """A server the fetcher must never reach: 127.0.0.1 is not allowlisted."""
    s = Server("127.0.0.1", app)
    await s.start()
    yield s
    await s.close()
    assert s.seen == []


class MapResolver:
    """Answers from a table; a host's answers are given in turn (the last one repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        turn = sum(1 for h in self.calls if h == host)
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = self.answers[host]
        return [ip_address(a) for a in answers[min(turn, len(answers) - 1)]]


class LocalOnly(httpx.AsyncBaseTransport):
    """The real transport, refusing all but 127.0.0.0/8: a broken guard fails the test, not the network."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if ip_address(request.url.host) not in IPv4Network("127.0.0.0/8"):
            raise AssertionError(f"the test tried to reach {request.url.host}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


MakeFetcher = Callable[..., SafeFetcher]


@pytest.fixture
async def make_fetcher() -> AsyncIterator[MakeFetcher]:
    made: list[SafeFetcher] = []

    def make(
        allow: str = ALLOWED,
        *,
        resolver: MapResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **limits: float,
    ) -> SafeFetcher:
        settings = {"connect_timeout_s": 2.0, "read_timeout_s": 2.0, "total_timeout_s": 10.0} | limits
        fetcher = SafeFetcher(
            AddressPolicy.from_setting(allow),
            FetchLimits(**settings),  # type: ignore[arg-type]  # the test passes only known fields
            resolver=resolver or MapResolver({}),
            transport=transport or LocalOnly(default_transport(ssl_context)),
        )
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


async def fetch(fetcher: SafeFetcher, url: str) -> bytes:
    async with aclosing(fetcher.stream(url)) as chunks:
        return b"".join([chunk async for chunk in chunks])


async def refusal(fetcher: SafeFetcher, url: str) -> str:
    with pytest.raises(FetchError) as info:
        await fetch(fetcher, url)
    return info.value.reason


# URL rules, checked before any I/O


@pytest.mark.parametrize(
    "url",
    [
        "http://media.example/a.wav",
        "https://media.example:8443/a.wav?sig=abc#t=1",
        "HTTPS://MEDIA.example/a.wav",
        "http://93.184.216.34/a.wav",
        "http://[2606:4700::1111]:80/a.wav",
        "https://xn--mdia-bpa.example/a.wav",
        "https://médìa.example/a.wav",
    ],
)
def test_good_urls_pass(url: str) -> None:
    assert check_url(url) is None


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("ftp://media.example/a.wav", "the URL must use http or https, not ftp"),
        ("file:///etc/passwd", "the URL must use http or https, not file"),
        ("gopher://x/", "the URL must use http or https, not gopher"),
        ("media.example/a.wav", "the URL must start with http:// or https://"),
        ("//media.example/a.wav", "the URL must start with http:// or https://"),
        ("http:///a.wav", "the URL has no host"),
        ("http://user:secret@media.example/a.wav", "the URL must not contain a user name or password"),
        ("http://user@media.example/a.wav", "the URL must not contain a user name or password"),
        ("http://media.example:0/a.wav", "the URL's port is not a number from 1 to 65535"),
        ("http://media.example:65536/a.wav", "the URL's port is not a number from 1 to 65535"),
        ("http://media.example:8o/a.wav", "the URL's port is not a number from 1 to 65535"),
        ("http://media example/a.wav", "the URL's host is not a valid host name or IP address"),
        ("http://2130706433/a.wav", "the URL's host is not a valid host name or IP address"),
        ("http://0x7f.1/a.wav", "the URL's host is not a valid host name or IP address"),
        ("http://media.example/\x00", "the URL is malformed"),
        ("http://media.example/" + "a" * 2048, "the URL is longer than 2048 characters"),
    ],
)
def test_bad_urls_name_the_rule(url: str, rule: str) -> None:
    assert check_url(url) == rule
    assert "secret" not in rule


def test_with_a_policy_a_forbidden_address_is_rejected_up_front() -> None:
    policy = AddressPolicy.from_setting(ALLOWED)
    assert check_url("http://127.0.0.1/a.wav", policy=policy) == "the address 127.0.0.1 is loopback"
    assert check_url("http://[::ffff:169.254.169.254]/", policy=policy) == (
        "the address ::ffff:a9fe:a9fe is a cloud metadata address"
    )
    assert check_url("http://127.0.0.2/a.wav", policy=policy) is None
    assert check_url("http://media.internal/a.wav", policy=policy) is None  # names need a lookup


async def test_a_bad_url_fails_the_fetch_without_io(make_fetcher: MakeFetcher) -> None:
    resolver = MapResolver({})
    fetcher = make_fetcher(resolver=resolver)
    assert await refusal(fetcher, "ftp://media.example/a.wav") == "the URL must use http or https, not ftp"
    assert resolver.calls == []


# Fetching


async def test_a_file_streams_in_chunks(server: Server, make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher()
    chunks = [chunk async for chunk in fetcher.stream(f"{server.origin}/file")]
    assert b"".join(chunks) == BODY
    assert len(chunks) > 1
    assert await fetch(fetcher, f"{server.origin}/no-length") == BODY


async def test_open_tells_the_final_url_and_headers(server: Server, make_fetcher: MakeFetcher) -> None:
    async with make_fetcher().open(f"{server.origin}/redirect/2") as download:
        assert download.url == f"{server.origin}/file"
        assert download.content_type == "audio/wav"
        assert download.content_length == len(BODY)
        assert b"".join([c async for c in download.chunks()]) == BODY
    assert [s.path for s in server.seen] == ["/redirect/2", "/redirect/1", "/file"]
    assert server.seen[0].headers["accept-encoding"] == "identity"
    assert server.seen[0].headers["user-agent"].startswith("Herald/")


async def test_the_request_carries_the_original_host(server: Server, make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher(resolver=MapResolver({"media.test": [[ALLOWED]]}))
    assert (
        await fetch(fetcher, f"http://media.test:{server.port}/host") == f"media.test:{server.port}".encode()
    )


async def test_an_allowlisted_name_passes_the_address_check(
    server: Server, make_fetcher: MakeFetcher
) -> None:
    fetcher = make_fetcher("media.intranet", resolver=MapResolver({"media.intranet": [[ALLOWED]]}))
    assert await fetch(fetcher, f"http://media.intranet:{server.port}/file") == BODY
    assert await refusal(fetcher, f"{server.origin}/file") == f"the address {ALLOWED} is loopback"


async def test_http_errors_and_encodings_are_refused(server: Server, make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher()
    assert await refusal(fetcher, f"{server.origin}/missing") == "the server answered HTTP 404"
    assert await refusal(fetcher, f"{server.origin}/gzip") == (
        "the server sent gzip-encoded content, which is not supported"
    )


# Size


async def test_a_declared_size_over_the_limit_fails_before_the_body(
    server: Server, make_fetcher: MakeFetcher
) -> None:
    fetcher = make_fetcher(max_bytes=10_000, read_timeout_s=5.0)
    async with asyncio.timeout(2):  # the server never sends the body: only the header can fail it
        assert await refusal(fetcher, f"{server.origin}/big-declared") == "the file is larger than 10 kB"


@pytest.mark.parametrize("path", ["/big-streamed", "/big-chunked"])
async def test_an_undeclared_size_fails_while_streaming(
    server: Server, make_fetcher: MakeFetcher, path: str
) -> None:
    fetcher = make_fetcher(max_bytes=10_000)
    received: list[bytes] = []

    async def consume() -> None:
        async with aclosing(fetcher.stream(f"{server.origin}{path}")) as chunks:
            async for chunk in chunks:
                received.append(chunk)

    with pytest.raises(FetchError, match=r"^the file is larger than 10 kB$"):
        await consume()
    assert sum(map(len, received)) <= 10_000


# Time


async def test_a_drip_fails_by_the_read_timeout(server: Server, make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher(read_timeout_s=0.2)
    assert await refusal(fetcher, f"{server.origin}/drip") == "no data for 0.2 s"


async def test_a_trickle_fails_by_the_total_timeout(server: Server, make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher(read_timeout_s=1.0, total_timeout_s=0.4)
    assert await refusal(fetcher, f"{server.origin}/trickle") == "the download took longer than 0.4 s"


async def test_a_slow_consumer_does_not_use_up_the_total_time(
    server: Server, make_fetcher: MakeFetcher
) -> None:
    fetcher = make_fetcher(total_timeout_s=0.3)
    received = b""
    async with aclosing(fetcher.stream(f"{server.origin}/file")) as chunks:
        async for chunk in chunks:
            received += chunk
            await asyncio.sleep(0.35)
    assert received == BODY


async def test_a_slow_lookup_fails_by_the_connect_timeout(make_fetcher: MakeFetcher) -> None:
    class SlowResolver(MapResolver):
        async def resolve(self, host: str, port: int) -> list[IPAddress]:
            await asyncio.sleep(5)
            raise AssertionError("unreachable")

    fetcher = make_fetcher(resolver=SlowResolver({}), connect_timeout_s=0.1)
    assert await refusal(fetcher, "http://slow.test/a.wav") == "could not resolve slow.test within 0.1 s"
    assert await refusal(make_fetcher(), "http://nowhere.test/a.wav") == "could not resolve nowhere.test"


# Redirects


async def test_five_redirects_are_followed_and_six_are_not(server: Server, make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher()
    assert await fetch(fetcher, f"{server.origin}/redirect/5") == BODY
    assert await refusal(fetcher, f"{server.origin}/redirect/6") == "the URL redirects more than 5 times"


async def test_a_redirect_to_loopback_is_refused(
    server: Server, loopback: Server, make_fetcher: MakeFetcher
) -> None:
    reason = await refusal(make_fetcher(), f"{server.origin}/to?{loopback.origin}/file")
    assert reason == "redirect 1 is refused: the address 127.0.0.1 is loopback"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("ftp://127.0.0.2/file", "the URL must use http or https, not ftp"),
        ("file:///etc/passwd", "the URL must use http or https, not file"),
        ("http://user:secret@127.0.0.2/file", "the URL must not contain a user name or password"),
        ("http://[::1]/file", "the address ::1 is loopback"),
        ("http://loopback.test/file", "the address 127.0.0.1 of loopback.test is loopback"),
    ],
)
async def test_every_hop_is_checked(
    server: Server, make_fetcher: MakeFetcher, location: str, reason: str
) -> None:
    fetcher = make_fetcher(resolver=MapResolver({"loopback.test": [["127.0.0.1"]]}))
    assert await refusal(fetcher, f"{server.origin}/to?{location}") == f"redirect 1 is refused: {reason}"
    assert len(server.seen) == 1


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://private.test/a.wav", "the address 10.0.0.5 of private.test is private"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "the address 169.254.169.254 is a cloud metadata address",
        ),
        ("http://[fd00:ec2::254]/", "the address fd00:ec2::254 is a cloud metadata address"),
        ("http://100.100.100.200/", "the address 100.100.100.200 is a cloud metadata address"),
    ],
)
async def test_a_hop_to_an_internal_address_is_refused_without_connecting(
    make_fetcher: MakeFetcher, location: str, reason: str
) -> None:
    transport = RecordingTransport(redirect_to=location)
    resolver = MapResolver({"media.example": [["93.184.216.34"]], "private.test": [["10.0.0.5"]]})
    fetcher = make_fetcher(resolver=resolver, transport=transport)
    assert await refusal(fetcher, "http://media.example/a.wav") == f"redirect 1 is refused: {reason}"
    assert [r.url.host for r in transport.requests] == ["93.184.216.34"]


# Addresses and DNS


class Body(httpx.AsyncByteStream):
    """A response body that streams, as a real connection's does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


class RecordingTransport(httpx.AsyncBaseTransport):
    """Stands in for the network: records each request, answers or fails as told, connects nowhere."""

    def __init__(self, fail_for: set[str] | None = None, redirect_to: str | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.fail_for = fail_for or set()
        self.redirect_to = redirect_to  # the first answer redirects there

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host in self.fail_for:
            raise httpx.ConnectError("Connection refused")
        if self.redirect_to is not None and len(self.requests) == 1:
            return httpx.Response(302, headers={"Location": self.redirect_to}, stream=Body(b""))
        return httpx.Response(200, stream=Body(b"audio"))


async def test_a_name_with_a_private_address_is_refused_without_connecting(make_fetcher: MakeFetcher) -> None:
    transport = RecordingTransport()
    fetcher = make_fetcher(resolver=MapResolver({"media.example": [["10.0.0.5"]]}), transport=transport)
    reason = await refusal(fetcher, "http://media.example/a.wav")
    assert reason == "the address 10.0.0.5 of media.example is private"
    assert transport.requests == []


async def test_a_name_with_any_forbidden_address_is_refused(make_fetcher: MakeFetcher) -> None:
    transport = RecordingTransport()
    resolver = MapResolver({"mixed.example": [["93.184.216.34", "::ffff:169.254.169.254"]]})
    fetcher = make_fetcher(resolver=resolver, transport=transport)
    reason = await refusal(fetcher, "https://mixed.example/a.wav")
    assert reason == "the address ::ffff:a9fe:a9fe of mixed.example is a cloud metadata address"
    assert transport.requests == []


async def test_dns_rebinding_cannot_move_the_connection(
    server: Server, loopback: Server, make_fetcher: MakeFetcher
) -> None:
    # The first answer is allowed; every later one points at loopback. Redirects stay on the same name.
    resolver = MapResolver({"media.test": [[ALLOWED], ["127.0.0.1"]]})
    fetcher = make_fetcher(resolver=resolver)
    assert await fetch(fetcher, f"http://media.test:{server.port}/redirect/3") == BODY
    assert resolver.calls == ["media.test"]
    assert [s.headers["host"] for s in server.seen] == [f"media.test:{server.port}"] * 4


async def test_the_request_goes_to_the_checked_address_with_the_name_for_tls(
    make_fetcher: MakeFetcher,
) -> None:
    transport = RecordingTransport(fail_for={"2606:4700::1"})
    resolver = MapResolver({"media.example": [["2606:4700::1", "93.184.216.34"]]})
    fetcher = make_fetcher(resolver=resolver, transport=transport)
    assert await fetch(fetcher, "https://media.example/a.wav?sig=1") == b"audio"
    first, second = transport.requests
    assert str(first.url) == "https://[2606:4700::1]/a.wav?sig=1"
    assert str(second.url) == "https://93.184.216.34/a.wav?sig=1"  # the next checked address, no new lookup
    assert second.headers["host"] == "media.example"
    assert second.extensions["sni_hostname"] == "media.example"
    assert resolver.calls == ["media.example"]


async def test_connection_failures_are_reported_by_host(make_fetcher: MakeFetcher) -> None:
    transport = RecordingTransport(fail_for={"93.184.216.34"})
    fetcher = make_fetcher(resolver=MapResolver({"media.example": [["93.184.216.34"]]}), transport=transport)
    reason = await refusal(fetcher, "http://media.example/a.wav")
    assert reason == "could not connect to media.example: Connection refused"


# HTTPS: the certificate is checked against the name while the connection goes to the pinned address.


@dataclass(frozen=True)
class Certs:
    server: ssl.SSLContext
    client: ssl.SSLContext
    sni: list[str | None]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Herald test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "media.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("media.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "leaf.pem").write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    sni: list[str | None] = []
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "leaf.pem")

    def record_sni(_conn: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(name)

    server.sni_callback = record_sni
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return Certs(server, client, sni)


@pytest.fixture
async def tls_server(certs: Certs) -> AsyncIterator[Server]:
    s = Server(ALLOWED, app, tls=certs.server)
    await s.start()
    yield s
    await s.close()


async def test_https_verifies_the_name_while_connecting_to_the_pinned_address(
    tls_server: Server, certs: Certs, make_fetcher: MakeFetcher
) -> None:
    resolver = MapResolver({"media.test": [[ALLOWED]]})
    fetcher = make_fetcher(resolver=resolver, ssl_context=certs.client)
    certs.sni.clear()
    assert await fetch(fetcher, f"https://media.test:{tls_server.port}/file") == BODY
    assert certs.sni == ["media.test"]
    assert tls_server.seen[0].headers["host"] == f"media.test:{tls_server.port}"


async def test_https_refuses_a_certificate_for_another_name(
    tls_server: Server, certs: Certs, make_fetcher: MakeFetcher
) -> None:
    resolver = MapResolver({"other.test": [[ALLOWED]]})
    fetcher = make_fetcher(resolver=resolver, ssl_context=certs.client)
    reason = await refusal(fetcher, f"https://other.test:{tls_server.port}/file")
    assert reason.startswith("could not connect to other.test: ")
    assert "certificate" in reason
    # Connecting by address verifies against the address, which the certificate does not name either.
    reason = await refusal(fetcher, f"{tls_server.origin}/file")
    assert "certificate" in reason
    assert tls_server.seen == []
