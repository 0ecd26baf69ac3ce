"""`speakbridge lb-config`: an HAProxy or nginx configuration for many bridges behind one address.

The templates beside this module are the one source; this fills in the listening address, TLS
and the backends (every worker port of every machine, each a backend of its own).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Balancer = Literal["haproxy", "nginx"]
BALANCERS: tuple[Balancer, ...] = ("haproxy", "nginx")
TEMPLATES = Path(__file__).parent
TEMPLATE_FILE: dict[Balancer, str] = {"haproxy": "haproxy.cfg", "nginx": "nginx.conf"}
PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")


@dataclass(frozen=True)
class Address:
    """A host (name, IPv4, or IPv6 without brackets) and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Tls:
    """Where the certificate chain and its private key are (the same file when one PEM)."""

    cert: Path
    key: Path


def parse_address(spec: str, default_host: str | None = None) -> Address:
    """HOST:PORT, [IPv6]:PORT, or PORT alone when default_host is given."""
    match = re.fullmatch(r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d+)", spec)
    if match is None and default_host is not None and spec.isdigit():
        host, port = default_host, int(spec)
    elif match is None:
        expected = "[HOST:]PORT" if default_host is not None else "HOST:PORT"
        raise ValueError(f"{spec!r} is not {expected} (an IPv6 host goes in brackets)")
    else:
        host, port = match["v6"] or match["host"], int(match["port"])
    if not 0 < port < 65536:
        raise ValueError(f"{spec!r}: the port must be 1 to 65535")
    return Address(host, port)


def backends(specs: list[str], workers: int = 1) -> list[Address]:
    """Each HOST:PORT, and with workers > 1 its workers' ports (port + i) too, in order."""
    if not specs:
        raise ValueError("give at least one --backend HOST:PORT")
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    found = [Address(a.host, a.port + i) for a in map(parse_address, specs) for i in range(workers)]
    if (top := max(a.port for a in found)) > 65535:
        raise ValueError(f"a worker's port would be {top}: above 65535")
    if len(set(found)) < len(found):
        raise ValueError("a backend is given twice (its worker ports overlap another's)")
    return found


def tls(cert: str | None, key: str | None, balancer: Balancer) -> Tls | None:
    """The TLS files as absolute paths; HAProxy reads the key from the PEM or from CERT.key."""
    if cert is None:
        if key is not None:
            raise ValueError("--key needs --cert")
        return None
    cert_path = Path(cert).absolute()
    key_path = Path(key).absolute() if key else cert_path
    if balancer == "haproxy" and key_path not in (cert_path, Path(f"{cert_path}.key")):
        raise ValueError(
            "HAProxy reads the key from the certificate's PEM, or from CERT.key beside it: "
            "put them in one file (cat fullchain.pem privkey.pem) and drop --key"
        )
    return Tls(cert_path, key_path)


def render(
    balancer: Balancer, servers: list[Address], listen: Address | None, tls_files: Tls | None
) -> str:
    """The configuration file's text; listen defaults to port 443 with TLS, 80 without."""
    listen = listen or Address("*", 443 if tls_files else 80)
    fill = _haproxy if balancer == "haproxy" else _nginx
    values = fill(servers, listen, tls_files)
    template = (TEMPLATES / TEMPLATE_FILE[balancer]).read_text()
    return PLACEHOLDER.sub(lambda m: values[m[1]], template)


def _haproxy(servers: list[Address], listen: Address, tls_files: Tls | None) -> dict[str, str]:
    host = "" if listen.host == "*" else str(listen).rsplit(":", 1)[0]
    bind = f"{host}:{listen.port}" + (f" ssl crt {tls_files.cert}" if tls_files else "")
    ids = [ring_id(a) for a in servers]
    if len(set(ids)) < len(ids):
        raise ValueError("two backends share a hash-ring id: change one's port")
    lines = [f"    server bridge{i} {a} id {ring_id(a)}" for i, a in enumerate(servers, 1)]
    return {"bind": bind, "servers": "\n".join(lines)}


def ring_id(address: Address) -> int:
    """HAProxy places a server on its hash ring by its id: one taken from the address (as
    nginx does) keeps the ring the same whatever the order of the lines, on every balancer."""
    return zlib.crc32(str(address).encode()) % 2_000_000_000 + 1


def _nginx(servers: list[Address], listen: Address, tls_files: Tls | None) -> dict[str, str]:
    where = str(listen.port) if listen.host == "*" else str(listen)
    lines = [f"    listen {where}{' ssl' if tls_files else ''};"]
    if tls_files:
        lines += [
            f"    ssl_certificate {tls_files.cert};",
            f"    ssl_certificate_key {tls_files.key};",
        ]
    upstream = [f"    server {a} weight=10 max_fails=0;" for a in servers]
    return {"listen": "\n".join(lines), "servers": "\n".join(upstream)}
