"""HAProxy and nginx as real programs in the foreground, on the configuration `speakbridge
lb-config` writes, for the load-balancer benchmark and the deployment tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bridge.deploy import balancer

BRIDGE = [sys.executable, "-m", "bridge"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    """Poll condition() until it is truthy (returns its value) or fail naming what."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return value


class LoadBalancer:
    """HAProxy or nginx in the foreground, on the configuration `speakbridge lb-config` wrote."""

    def __init__(
        self,
        kind: balancer.Balancer,
        backends: list[str],
        workdir: Path,
        cert: Path | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / ("haproxy.cfg" if kind == "haproxy" else "speakbridge.conf")
        flags = [f"--backend={b}" for b in backends] + [f"--listen=127.0.0.1:{self.port}"]
        flags += [f"--cert={cert}"] if cert else []
        written = subprocess.run(
            [*BRIDGE, "lb-config", "--lb", kind, *flags, *extra, "--out", str(self.config)],
            capture_output=True,
            text=True,
        )
        assert written.returncode == 0, written.stderr
        self.log = workdir / f"{kind}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, text=True
            )
        scheme = "https" if cert else "http"
        self.http = f"{scheme}://127.0.0.1:{self.port}"
        self.ws = f"{'wss' if cert else 'ws'}://127.0.0.1:{self.port}"
        wait_for(self._listening, 15, f"{kind} to listen ({self.log.read_text()})")

    def _command(self) -> list[str]:
        if self.kind == "haproxy":
            return ["haproxy", "-db", "-f", str(self.config)]
        # The generated file is an http-level include, as in /etc/nginx/conf.d/; this wraps it.
        main = self.workdir / "nginx.conf"
        main.write_text(
            f"daemon off;\nworker_processes auto;\npid {self.workdir}/nginx.pid;\n"
            f"error_log {self.workdir}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            f"http {{\n    access_log off;\n    include {self.config};\n}}\n"
        )
        return ["nginx", "-p", str(self.workdir), "-c", str(main)]

    def _listening(self) -> bool:
        assert self.process.poll() is None, f"{self.kind} exited: {self.log.read_text()}"
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def self_signed(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A certificate for host (and 127.0.0.1) and its key, made with openssl; also writes
    CERT+KEY as one PEM (what HAProxy reads) at directory/combined.pem."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host},IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (directory / "combined.pem").write_text(cert.read_text() + key.read_text())
    return cert, key
