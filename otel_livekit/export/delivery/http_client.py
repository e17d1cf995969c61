"""The HTTP client every OTLP post of this package goes through: the spool's sender, the
spool-off exporters and ``doctor`` (so ``doctor`` tests the path a call's data takes).

urllib3 directly, the library ``requests`` is built on: a 30 KB post costs the sending
thread about a third of ``requests``' CPU (bench/RESULTS.md), time the agent's event loop
may spend waiting for the GIL. What ``requests`` did for the exporters is kept:

- proxies from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``,
  lower case too; credentials in the proxy URL become its ``Proxy-Authorization``), chosen
  by ``requests``' own rules;
- the CA bundle: ``OTEL_EXPORTER_OTLP_*CERTIFICATE``, else ``REQUESTS_CA_BUNDLE`` or
  ``CURL_CA_BUNDLE``, else certifi's (what ``requests`` trusts); the client certificate;
- one attempt per call, no redirects followed: the callers decide when to try again.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import certifi
import urllib3
from requests.utils import get_environ_proxies, select_proxy
from urllib3.exceptions import (
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProxyError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import parse_url

from ...secrets import safe_url
from ..destinations.transport import Transport

logger = logging.getLogger("otel_livekit")

CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@dataclass(frozen=True)
class Reply:
    status: int
    retry_after: str | None


def failure_reason(error: BaseException) -> str:
    """A few words a user can act on: refused, timeout, TLS, or the exception's type."""
    if isinstance(error, SSLError):
        return "TLS error"
    if isinstance(error, NameResolutionError):
        return "host name does not resolve"
    if isinstance(error, NewConnectionError):  # before timeouts: urllib3 derives it from one
        return "connection refused" if "refused" in str(error).lower() else "connection error"
    if isinstance(error, Urllib3Timeout):
        return "timeout (no answer)"
    if isinstance(error, ProxyError):
        return "proxy error"
    if isinstance(error, HTTPError):
        return "connection error"
    return type(error).__name__


def ca_bundle(transport: Transport, env: Mapping[str, str]) -> str:
    return transport.certificate or next(
        (v for var in CA_BUNDLE_VARIABLES if (v := env.get(var))), certifi.where()
    )


def _pool(transport: Transport, env: Mapping[str, str]) -> urllib3.PoolManager:
    tls: dict[str, object] = {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca_bundle(transport, env)}
    if transport.client_certificate:
        tls["cert_file"] = transport.client_certificate
        tls["key_file"] = transport.client_key
    proxy = select_proxy(transport.endpoint, get_environ_proxies(transport.endpoint))
    if not proxy:
        return urllib3.PoolManager(num_pools=2, maxsize=2, **tls)  # type: ignore[arg-type]
    if "://" not in proxy:
        proxy = "http://" + proxy  # as requests reads a bare host:port
    try:
        if proxy.lower().startswith("socks"):  # needs PySocks, as with requests
            with warnings.catch_warnings():  # urllib3 warns as it fails: ours says it once
                warnings.simplefilter("ignore")
                from urllib3.contrib.socks import SOCKSProxyManager

            return SOCKSProxyManager(proxy, num_pools=2, maxsize=2, **tls)  # type: ignore[arg-type]
        auth = parse_url(proxy).auth
        proxy_headers = {}
        if auth:
            user, _, password = auth.partition(":")
            proxy_headers = urllib3.make_headers(proxy_basic_auth=f"{unquote(user)}:{unquote(password)}")
        return urllib3.ProxyManager(proxy, num_pools=2, maxsize=2, proxy_headers=proxy_headers, **tls)  # type: ignore[arg-type]
    except (ImportError, ValueError) as exc:  # the proxy URL (it may hold a password) is never shown
        logger.warning("otel_livekit: the proxy the environment sets for %s cannot be used (%s): "
                       "posting without it", safe_url(transport.endpoint), type(exc).__name__)  # fmt: skip
        return urllib3.PoolManager(num_pools=2, maxsize=2, **tls)  # type: ignore[arg-type]


class HttpClient:
    """One destination's connection pool; each attempt's outcome goes to ``on_attempt``
    (``None`` for an answer under 400, else the reason) — the destination's health."""

    def __init__(self, transport: Transport, on_attempt: Callable[[str | None], None] | None = None,
                 env: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self._pool = _pool(transport, os.environ if env is None else env)
        self._on_attempt = on_attempt

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Reply:
        """One POST; raises what urllib3 raises when no answer came (``failure_reason``)."""
        try:
            response = self._pool.request(
                "POST", url, body=body, headers=dict(headers), retries=False, redirect=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
            )  # fmt: skip
        except Exception as exc:
            if self._on_attempt is not None:
                self._on_attempt(failure_reason(exc))
            raise
        status = response.status
        if self._on_attempt is not None:
            self._on_attempt(None if status < 400 else f"HTTP {status}")
        return Reply(status, response.headers.get("retry-after"))
