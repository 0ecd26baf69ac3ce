"""`speakbridge lb-config`: the files it writes are valid to the real programs, and its flags are
checked with clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bridge import cli
from bridge.deploy.balancer import Address, backends, parse_address, render, tls
from tests.deploy.balancers import self_signed


def test_addresses_and_worker_ports():
    assert parse_address("10.0.0.5:8765") == Address("10.0.0.5", 8765)
    assert str(parse_address("[::1]:9000")) == "[::1]:9000"
    assert parse_address("8443", default_host="*") == Address("*", 8443)
    for bad in ("10.0.0.5", "::1:9000", "h:0", "h:70000", "h:port"):
        with pytest.raises(ValueError):
            parse_address(bad)
    assert [str(a) for a in backends(["a:9000", "b:9000"], workers=2)] == [
        "a:9000", "a:9001", "b:9000", "b:9001"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="twice"):
        backends(["a:9000", "a:9001"], workers=2)
    with pytest.raises(ValueError, match="above 65535"):
        backends(["a:65535"], workers=2)
    with pytest.raises(ValueError, match="at least one"):
        backends([])


def test_haproxy_reads_the_key_from_the_pem_or_beside_it(tmp_path):
    pem = tmp_path / "site.pem"
    assert tls(str(pem), None, "haproxy").key == pem
    assert tls(str(pem), f"{pem}.key", "haproxy") is not None
    with pytest.raises(ValueError, match="one file"):
        tls(str(pem), str(tmp_path / "other.key"), "haproxy")
    assert tls(str(pem), str(tmp_path / "k.pem"), "nginx").key == tmp_path / "k.pem"
    with pytest.raises(ValueError, match="--key needs --cert"):
        tls(None, "k.pem", "nginx")


def test_every_route_hashes_on_the_session_id_alone():
    servers = backends(["10.0.0.1:8765", "10.0.0.2:8765"])
    haproxy = render("haproxy", servers, None, None)
    assert "balance hash var(txn.session)" in haproxy and "hash-type consistent" in haproxy
    assert "set-var(txn.session) path,field(3,/) if { path_beg /bots/ /control/ }" in haproxy
    assert "bind :80\n" in haproxy and "server bridge2 10.0.0.2:8765 id " in haproxy
    nginx = render("nginx", servers, Address("127.0.0.1", 8080), None)
    assert "hash $speakbridge_session consistent;" in nginx
    assert "listen 127.0.0.1:8080;" in nginx and "ssl" not in nginx.split("server {")[1]
    assert "{{" not in haproxy + nginx


def test_haproxy_accepts_the_file_it_writes(tmp_path):
    self_signed(tmp_path)
    out = tmp_path / "haproxy.cfg"
    args = ["lb-config", "--lb", "haproxy", "--backend", "10.0.0.1:8765", "--workers", "2"]
    assert cli.main([*args, "--cert", str(tmp_path / "combined.pem"), "--out", str(out)]) == 0
    text = out.read_text()
    assert f"bind :443 ssl crt {tmp_path / 'combined.pem'}" in text
    assert "server bridge2 10.0.0.1:8766" in text
    checked = subprocess.run(["haproxy", "-c", "-f", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_nginx_accepts_the_file_it_writes(tmp_path):
    cert, key = self_signed(tmp_path)
    site = tmp_path / "speakbridge.conf"
    args = ["lb-config", "--lb", "nginx", "--backend", "[::1]:8765", "--listen", "127.0.0.1:8443"]
    assert cli.main([*args, "--cert", str(cert), "--key", str(key), "--out", str(site)]) == 0
    assert f"ssl_certificate_key {key};" in site.read_text()
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ include {site}; }}\n"
    )
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr


def test_bad_flags_are_one_line_errors(capsys):
    assert cli.main(["lb-config", "--lb", "nginx", "--backend", "nohost"]) == 2
    assert "'nohost' is not HOST:PORT" in capsys.readouterr().err
    args = ["lb-config", "--lb", "haproxy", "--backend", "h:1", "--cert", "c.pem"]
    assert cli.main([*args, "--key", "k.pem"]) == 2
    assert "HAProxy reads the key" in capsys.readouterr().err


def test_the_templates_ship_with_the_package():
    import bridge.deploy

    folder = Path(bridge.deploy.__file__).parent
    assert {"haproxy.cfg", "nginx.conf"} <= {p.name for p in folder.iterdir()}
