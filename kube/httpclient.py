"""urllib openers for the operator's own HTTP calls (PromQL queries, the webhook provider,
the infrastructure webhook, the traffic probe).

A loopback URL (the sandbox's Prometheus and webhook receivers, a sidecar) is dialled
directly even when HTTP_PROXY/HTTPS_PROXY are set: a proxy cannot reach the operator's
loopback. Other hosts honour the proxy variables (and NO_PROXY) as urllib always does.

No opener follows a redirect: the URLs come from users (`traffic.url`, `prometheus.url`, a
member Secret), and a redirect would send the operator's request, from inside the cluster,
wherever the answer says (and urllib turns a redirected POST into a body-less GET, so a
switch or an inject would seem delivered when it was not). A 3xx is an HTTPError the caller
reports; the user configures the final URL. Answers are read with `read_bounded`.
"""

from __future__ import annotations

import functools
import ipaddress
import urllib.parse
import urllib.request
from typing import Any, Protocol


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


class AnswerTooLarge(ValueError):
    """An HTTP answer over the caller's limit: it was not read whole."""


class Readable(Protocol):
    def read(self, amt: int, /) -> bytes: ...


def read_bounded(response: Readable, limit: int) -> bytes:
    """At most `limit` bytes of the answer; AnswerTooLarge when it holds more."""
    body = response.read(limit + 1)
    if len(body) > limit:
        raise AnswerTooLarge(f"the answer is over {limit // 1024} KiB")
    return body


@functools.cache
def _opener(
    direct: bool, handlers: tuple[type[urllib.request.BaseHandler], ...]
) -> urllib.request.OpenerDirector:
    no_proxy = [urllib.request.ProxyHandler({})] if direct else []
    return urllib.request.build_opener(*no_proxy, NoRedirect, *handlers)


def opener(url: str, *handlers: type[urllib.request.BaseHandler]) -> urllib.request.OpenerDirector:
    """An opener for `url` with `handlers` (classes); no proxy for a loopback URL, never a
    redirect."""
    return _opener(is_loopback(url), handlers)
