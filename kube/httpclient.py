"""urllib openers for the operator's own HTTP calls (PromQL queries, the webhook provider).

A loopback URL (the sandbox's Prometheus and webhook receivers, a sidecar) is dialled
directly even when HTTP_PROXY/HTTPS_PROXY are set: a proxy cannot reach the operator's
loopback. Other hosts honour the proxy variables (and NO_PROXY) as urllib always does.
"""

from __future__ import annotations

import functools
import ipaddress
import urllib.parse
import urllib.request


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def _opener(
    direct: bool, handlers: tuple[type[urllib.request.BaseHandler], ...]
) -> urllib.request.OpenerDirector:
    no_proxy = [urllib.request.ProxyHandler({})] if direct else []
    return urllib.request.build_opener(*no_proxy, *handlers)


def opener(url: str, *handlers: type[urllib.request.BaseHandler]) -> urllib.request.OpenerDirector:
    """An opener for `url` with `handlers` (classes); no proxy for a loopback URL."""
    return _opener(is_loopback(url), handlers)
