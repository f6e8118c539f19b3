"""Fetching audio files from callers' URLs, treating the network as hostile.

``check_url`` rejects a bad URL before any I/O. ``SafeFetcher`` then resolves each host once, refuses it if
any of its addresses is forbidden by the ``AddressPolicy``, and connects to the checked address itself, so
a second DNS answer cannot redirect the connection (DNS rebinding). HTTPS still verifies the certificate
against the host name (sent as SNI) and the request carries the original ``Host``. Redirects are followed by
hand and every hop is checked again. Size and time are bounded; every failure is a ``FetchError`` whose
``reason`` tells the caller which rule was hit and never contains the URL.

    fetcher = SafeFetcher(AddressPolicy.from_setting(os.environ.get("HERALD_FETCH_ALLOW", "")))
    async with fetcher.open(url) as download:        # connects, follows redirects, checks headers
        async for chunk in download.chunks():        # body bytes as they arrive
            ...
    await fetcher.aclose()
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Protocol, cast
from urllib.parse import urlsplit

import httpx

from herald import __version__
from herald.media.netguard import AddressPolicy, IPAddress, is_host_name, normalize_host

logger = logging.getLogger(__name__)

MAX_URL_CHARS = 2048
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = f"Herald/{__version__}"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 20_000_000
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0  # the longest wait for the next bytes
    total_timeout_s: float = 120.0  # time spent waiting on the network, not on the consumer
    max_redirects: int = 5

    def __post_init__(self) -> None:
        for name in ("max_bytes", "connect_timeout_s", "read_timeout_s", "total_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive (got {getattr(self, name)})")
        if self.max_redirects < 0:
            raise ValueError(f"max_redirects must not be negative (got {self.max_redirects})")


DEFAULT_LIMITS = FetchLimits()


class FetchError(Exception):
    """A fetch was refused or failed; ``reason`` says which rule was hit, fit to show to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of ``host``, in the order to try them; raises ``OSError`` if there is none."""
        ...


class SystemResolver:
    """The operating system's resolver, through the event loop's ``getaddrinfo``."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            ip = ip_address(sockaddr[0])
            if ip not in addresses:
                addresses.append(ip)
        return addresses


def check_url(url: str, *, policy: AddressPolicy | None = None) -> str | None:
    """The rule ``url`` breaks, or ``None`` if it may be fetched; pure, for rejecting requests up front.

    With a ``policy``, a host written as a forbidden IP address is rejected too (names need a lookup).
    """
    if len(url) > MAX_URL_CHARS:
        return f"the URL is longer than {MAX_URL_CHARS} characters"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        try:
            _ = urlsplit(url).port  # urllib says whether the port is what httpx disliked
        except ValueError:
            return "the URL's port is not a number from 1 to 65535"
        return "the URL is malformed"
    return _check_parsed(parsed, policy)


def _check_parsed(url: httpx.URL, policy: AddressPolicy | None) -> str | None:
    if url.scheme not in ("http", "https"):
        if not url.scheme:
            return "the URL must start with http:// or https://"
        return f"the URL must use http or https, not {url.scheme[:16]}"
    if url.userinfo:
        return "the URL must not contain a user name or password"
    host = url.raw_host.decode("ascii")
    if not host:
        return "the URL has no host"
    literal = _ip_literal(host)
    if literal is None and not is_host_name(normalize_host(host)):
        return "the URL's host is not a valid host name or IP address"
    if url.port is not None and not 1 <= url.port <= 65535:
        return "the URL's port is not a number from 1 to 65535"
    if policy is not None and literal is not None:
        reason = policy.forbidden_reason(literal)
        if reason is not None:
            return f"the address {literal} is {reason}"
    return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def _size(n_bytes: int) -> str:
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1_000_000:g} MB"
    if n_bytes >= 1_000:
        return f"{n_bytes / 1_000:g} kB"
    return f"{n_bytes} bytes"


def _transport_error(exc: httpx.TransportError, host: str, limits: FetchLimits) -> FetchError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return FetchError(f"could not connect to {host} within {limits.connect_timeout_s:g} s")
    if isinstance(exc, httpx.ReadTimeout):
        return FetchError(f"no data for {limits.read_timeout_s:g} s")
    if isinstance(exc, httpx.ConnectError):
        return FetchError(f"could not connect to {host}: {detail}")
    return FetchError(f"the connection to {host} failed: {detail}")


class WaitBudget:
    """The total time one exchange may spend waiting on the network.

    Time the consumer spends between waits is not counted: a consumer reading at playout pace must not
    make a long file fail, while a server that drips bytes still does. When it runs out, the wait raises
    ``expired(total_s)``; ``renew`` grants a fresh allowance (an LLM's patience between tokens).
    """

    def __init__(self, total_s: float, expired: Callable[[float], Exception]) -> None:
        self.total_s = total_s
        self._left_s = total_s
        self._expired = expired

    def renew(self, total_s: float) -> None:
        self.total_s = self._left_s = total_s

    @asynccontextmanager
    async def waiting(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()  # asyncio.timeout runs on the loop's clock, so measure on it
        started = loop.time()
        deadline = asyncio.timeout(max(self._left_s, 0.0))
        try:
            async with deadline:
                yield
        except TimeoutError:
            if deadline.expired():
                raise self._expired(self.total_s) from None
            raise
        finally:
            self._left_s -= loop.time() - started


def _download_budget(total_s: float) -> WaitBudget:
    return WaitBudget(total_s, lambda s: FetchError(f"the download took longer than {s:g} s"))


class Download:
    """A response that passed every check: its final URL, its headers and its body."""

    def __init__(
        self, response: httpx.Response, url: httpx.URL, limits: FetchLimits, budget: WaitBudget
    ) -> None:
        self.url = str(url)  # after redirects; may hold tokens in its query: do not log it
        self.status_code = response.status_code
        self.content_type: str | None = response.headers.get("content-type")
        declared = response.headers.get("content-length")
        self.content_length = int(declared) if declared is not None and declared.isdigit() else None
        self._response = response
        self._host = url.host
        self._limits = limits
        self._budget = budget

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives; raises ``FetchError`` past the size limit or a timeout. Call once."""
        received = 0
        # httpx types it as an iterator; it is an async generator, closed here rather than by the GC.
        body = cast(AsyncGenerator[bytes, None], self._response.aiter_raw())
        async with aclosing(body) as raw:
            while True:
                try:
                    async with self._budget.waiting():
                        chunk = await anext(raw, None)
                except httpx.TransportError as exc:
                    raise _transport_error(exc, self._host, self._limits) from exc
                if chunk is None:
                    return
                received += len(chunk)
                if received > self._limits.max_bytes:
                    raise FetchError(f"the file is larger than {_size(self._limits.max_bytes)}")
                if chunk:
                    yield chunk


def default_transport(ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncHTTPTransport:
    """The connection layer ``SafeFetcher`` uses; ``ssl_context`` replaces the default trust store."""
    # A transport, not a Client: no proxies from the environment, no cookie jar shared between callers,
    # no automatic redirects. No keep-alive, so a TLS connection verified for one name is never reused
    # for another name that resolved to the same address.
    return httpx.AsyncHTTPTransport(
        verify=ssl_context or True,
        trust_env=False,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
    )


class HttpAnswer(Protocol):
    """An HTTP response being read (a ``Download``)."""

    @property
    def status_code(self) -> int: ...

    def chunks(self) -> AsyncGenerator[bytes, None]: ...


class HttpExchange(Protocol):
    """Sends a POST and yields the answer as it arrives (``SafeFetcher``; fakes in tests)."""

    def exchange(
        self, url: str, body: bytes, headers: Mapping[str, str], *, limits: FetchLimits | None = None
    ) -> AbstractAsyncContextManager[HttpAnswer]: ...


class SafeFetcher:
    """Fetches http(s) URLs under an ``AddressPolicy`` and ``FetchLimits``; share one, ``aclose()`` it.

    A host that resolves to several addresses is refused if any of them is forbidden: picking the allowed
    ones would let a hostile name mix a public address with an internal one and wait for a fallback.
    ``transport`` replaces the connection layer: ``default_transport(ssl_context)`` for another trust store,
    or a fake in tests.
    """

    def __init__(
        self,
        policy: AddressPolicy,
        limits: FetchLimits = DEFAULT_LIMITS,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._policy = policy
        self._limits = limits
        self._resolver = resolver or SystemResolver()
        self._transport = transport or default_transport()

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def stream(self, url: str) -> AsyncGenerator[bytes, None]:
        """The body of ``url`` as it arrives; raises ``FetchError``. Close it with ``contextlib.aclosing``."""
        async with self.open(url) as download, aclosing(download.chunks()) as chunks:
            async for chunk in chunks:
                yield chunk

    @asynccontextmanager
    async def open(self, url: str) -> AsyncIterator[Download]:
        """Connect and follow redirects; the ``Download`` yielded has passed every check but the body's."""
        violation = check_url(url)
        if violation is not None:
            raise FetchError(violation)
        budget = _download_budget(self._limits.total_timeout_s)
        response, final_url = await self._follow(httpx.URL(url), budget)
        try:
            self._check_response(response)
            yield Download(response, final_url, self._limits, budget)
        finally:
            await response.aclose()

    async def _follow(self, url: httpx.URL, budget: WaitBudget) -> tuple[httpx.Response, httpx.URL]:
        pins: dict[str, list[IPAddress]] = {}  # one lookup per host per fetch, reused by later hops
        redirects = 0
        while True:
            try:
                addresses = await self._pin(url, pins, budget)
            except FetchError as exc:
                if redirects == 0:
                    raise
                raise FetchError(f"redirect {redirects} is refused: {exc.reason}") from exc
            response = await self._send(url, addresses, budget)
            if response.status_code not in _REDIRECT_STATUSES:
                return response, url
            location = response.headers.get("location")
            await response.aclose()
            redirects += 1
            if redirects > self._limits.max_redirects:
                raise FetchError(f"the URL redirects more than {self._limits.max_redirects} times")
            if location is None:
                raise FetchError(f"redirect {redirects} has no Location")
            try:
                url = url.join(location)
            except httpx.InvalidURL:
                raise FetchError(f"redirect {redirects} is refused: the URL is malformed") from None
            violation = check_url(str(url))
            if violation is not None:
                raise FetchError(f"redirect {redirects} is refused: {violation}")

    async def _pin(
        self, url: httpx.URL, pins: dict[str, list[IPAddress]], budget: WaitBudget
    ) -> list[IPAddress]:
        """The checked addresses of the URL's host, looked up at most once per fetch."""
        host = url.raw_host.decode("ascii")
        if host in pins:
            return pins[host]
        literal = _ip_literal(host)
        if literal is not None:
            reason = self._policy.forbidden_reason(literal)
            if reason is not None:
                raise FetchError(f"the address {literal} is {reason}")
            pins[host] = [literal]
            return pins[host]
        addresses = await self._resolve(host, url.port or _default_port(url), budget)
        allowlisted = self._policy.host_is_allowlisted(host)
        for ip in addresses:
            reason = self._policy.forbidden_reason(ip, host_allowlisted=allowlisted)
            if reason is not None:
                raise FetchError(f"the address {ip} of {host} is {reason}")
        pins[host] = addresses
        return addresses

    async def _resolve(self, host: str, port: int, budget: WaitBudget) -> list[IPAddress]:
        timeout_s = self._limits.connect_timeout_s
        try:
            async with budget.waiting(), asyncio.timeout(timeout_s):
                addresses = await self._resolver.resolve(host, port)
        except TimeoutError:
            raise FetchError(f"could not resolve {host} within {timeout_s:g} s") from None
        except OSError as exc:
            raise FetchError(f"could not resolve {host}") from exc
        if not addresses:
            raise FetchError(f"could not resolve {host}")
        return addresses

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body`` to ``url`` under the same address policy; the HTTP status. Redirects are not
        followed (a callback receiver answers where it was asked). Raises ``FetchError``."""
        violation = check_url(url)
        if violation is not None:
            raise FetchError(violation)
        budget = _download_budget(self._limits.total_timeout_s)
        target = httpx.URL(url)
        addresses = await self._pin(target, {}, budget)
        response = await self._send(target, addresses, budget, method="POST", body=body, headers=headers)
        try:
            async with budget.waiting():
                await response.aread()  # the receiver's answer is not kept, but the exchange completes
        except httpx.TransportError as exc:
            raise _transport_error(exc, target.host, self._limits) from exc
        finally:
            await response.aclose()
        return response.status_code

    @asynccontextmanager
    async def exchange(
        self, url: str, body: bytes, headers: Mapping[str, str], *, limits: FetchLimits | None = None
    ) -> AsyncIterator[Download]:
        """POST ``body`` to ``url`` under the address policy and read the answer as it arrives (a model's
        streamed reply, say). Any HTTP status is yielded (``Download.status_code``): the caller reads an
        error's body. Redirects are not followed. ``limits`` replace the fetcher's own for this exchange.
        Raises ``FetchError``."""
        violation = check_url(url)
        if violation is not None:
            raise FetchError(violation)
        limits = limits or self._limits
        budget = _download_budget(limits.total_timeout_s)
        target = httpx.URL(url)
        addresses = await self._pin(target, {}, budget)
        response = await self._send(
            target, addresses, budget, method="POST", body=body, headers=headers, limits=limits
        )
        try:
            _check_encoding(response, limits)
            yield Download(response, target, limits, budget)
        finally:
            await response.aclose()

    async def _send(
        self,
        url: httpx.URL,
        addresses: list[IPAddress],
        budget: WaitBudget,
        *,
        method: str = "GET",
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        limits: FetchLimits | None = None,
    ) -> httpx.Response:
        """Send to the first checked address that accepts a connection; never look the host up again."""
        limits = limits or self._limits
        logger.debug("%s to %s://%s", method, url.scheme, url.host)
        for index, ip in enumerate(addresses):
            try:
                async with budget.waiting():
                    request = self._request(url, ip, method=method, body=body, headers=headers, limits=limits)
                    return await self._transport.handle_async_request(request)
            except httpx.ConnectError as exc:
                if index + 1 < len(addresses):
                    continue
                raise _transport_error(exc, url.host, limits) from exc
            except httpx.TransportError as exc:
                raise _transport_error(exc, url.host, limits) from exc
        raise AssertionError("a pinned host always has an address")

    def _request(
        self,
        url: httpx.URL,
        ip: IPAddress,
        *,
        method: str = "GET",
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        limits: FetchLimits | None = None,
    ) -> httpx.Request:
        limits = limits or self._limits
        extensions: dict[str, object] = {
            "timeout": {
                "connect": limits.connect_timeout_s,
                "read": limits.read_timeout_s,
                "write": limits.read_timeout_s,
                "pool": limits.connect_timeout_s,
            }
        }
        host = url.raw_host.decode("ascii")
        if url.scheme == "https" and _ip_literal(host) is None:
            extensions["sni_hostname"] = host  # httpcore: SNI and the certificate's name check
        all_headers = httpx.Headers(
            {
                "Host": url.netloc.decode("ascii"),
                "User-Agent": _USER_AGENT,
                "Accept": "*/*",
                "Accept-Encoding": "identity",  # no decompression bombs: the size limit counts what we keep
            }
        )
        all_headers.update(headers or {})  # case-insensitive: a caller's "accept" replaces "Accept"
        return httpx.Request(
            method,
            url.copy_with(host=str(ip)),
            headers=all_headers,
            content=body or None,
            extensions=extensions,
        )

    def _check_response(self, response: httpx.Response) -> None:
        if not 200 <= response.status_code < 300:
            raise FetchError(f"the server answered HTTP {response.status_code}")
        _check_encoding(response, self._limits)


def _check_encoding(response: httpx.Response, limits: FetchLimits) -> None:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchError(f"the server sent {encoding[:32]}-encoded content, which is not supported")
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
        raise FetchError(f"the file is larger than {_size(limits.max_bytes)}")


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80
