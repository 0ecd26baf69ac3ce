"""Every command in README.md and docs/*.md, run as written, and the generated pages current.

The convention, for whoever writes a page (this test enforces it):

- Commands live in fenced blocks tagged `sh`, and only there: a block tagged `bash`,
  `shell`, `console` or untagged that holds a command is an error (output goes in `text`).
- Each `sh` block is run as one bash script (`set -euo pipefail`) from a scratch directory
  that mirrors the checkout (a symlink to each of its entries), with the test's venv first
  on PATH, as after `. .venv/bin/activate`. Files a command writes land in the scratch
  directory; blocks of one page share it, in order. The default port, 8765, is replaced
  by a free one throughout a page's blocks, and SPEAKBRIDGE_PORT and SPEAKBRIDGE_URL name
  that one, so a bridge already running on the machine does not get in the way.
- A marker comment on the line before a block changes how it runs:
  - `<!-- doc-test: dry -->`: for commands that need a real meeting, an API key, minutes,
    or a live session. The block runs, but a `speakbridge` command is only parsed by the
    command's own parser (every flag and value must be valid), `python -m MODULE ...`
    only checks that the module exists (it may need an extra), `pip` gets `--dry-run`, and
    `make` runs as `make -n` (the target must exist): nothing happens.
  - `<!-- doc-test: background -->`: a server, in one command. It is started, and the
    next block runs once it has printed its first line (the banner); it runs until the
    next background block starts or the page ends, then gets SIGTERM and must exit 0.
  - `<!-- doc-test: tested-by PATH -->`: commands that need a machine set up as root
    (a proxy's configuration in /etc, certificates, a reload) and that another test runs
    in its own fixture: PATH must exist and name this page, which is all that is checked
    here.
  - `<!-- doc-test: file NAME -->` (any language): the block's text is written to NAME in
    the scratch directory, for the commands after it (a responder the page shows).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge import docs_config
from bridge.config import BridgeConfig
from tests.sounds import ALSA

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = BridgeConfig.model_fields["port"].default
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(
    r"(?:<!-- doc-test: (?P<mark>[^>]*?) -->\n)?^```(?P<lang>\S*)\n(?P<body>.*?)^```", re.M | re.S
)
COMMAND_WORDS = re.compile(r"^\s*(?:\$ )?(speakbridge|make|python|pip|\.venv/|export|curl)\b", re.M)
# languages whose blocks are not commands (output is `text`)
NOT_COMMANDS = ("sh", "text", "python", "toml", "json", "nginx", "haproxy", "caddy", "yaml")

# Dry run: commands with effects are checked, not run.
DRY_PRELUDE = """
speakbridge() {  # parsed in full by the command's own parser, then not run
  command python -c 'import sys; from bridge import cli, environment
environment.config_defaults(); cli._parser().parse_args(sys.argv[1:])' "$@"
}
python() {  # `python -m MODULE ...`: the module must exist (its extra may not be installed)
  [ "$1" = -m ] && command python -c 'import importlib.util as u, sys
sys.exit(u.find_spec(sys.argv[1]) is None and f"no module {sys.argv[1]}")' "$2"
}
pip() { command pip "$@" --dry-run --quiet >/dev/null; }
make() { command make -n "$@" >/dev/null; }
"""


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    mark: str
    body: str

    @property
    def where(self) -> str:
        name = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{name}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [
        Block(page, text.count("\n", 0, m.start("body")), m["lang"], m["mark"] or "", m["body"])
        for m in FENCE.finditer(text)
    ]


def scratch_checkout(tmp_path: Path) -> Path:
    """A directory that looks like the checkout; what commands write stays in it."""
    work = tmp_path / "checkout"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".git", "demo-out", "recordings"):
            (work / entry.name).symlink_to(entry)
    return work


def shell_env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPEAKBRIDGE_", "PYTEST"))}
    path = f"{venv_bin}{os.pathsep}{env['PATH']}"
    return env | {"PATH": path, "VIRTUAL_ENV": str(Path(venv_bin).parent)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_page(page: Path, work: Path) -> None:
    """Run a page's blocks in order, at most one background server at a time."""
    port = str(free_port())
    env = shell_env() | {"SPEAKBRIDGE_PORT": port, "SPEAKBRIDGE_URL": f"ws://127.0.0.1:{port}"}
    server: Server | None = None
    try:
        for block in blocks(page):
            block.body = block.body.replace(str(DEFAULT_PORT), port)
            if block.mark.startswith("file "):
                (work / block.mark.removeprefix("file ").strip()).write_text(block.body)
            elif block.lang != "sh":
                continue
            elif block.mark.startswith("tested-by "):
                test = ROOT / block.mark.removeprefix("tested-by ").strip()
                assert test.is_file(), f"{block.where}: no test {test}"
                assert page.name in test.read_text(), f"{block.where}: {test} never reads the page"
            elif block.mark == "background":
                if server is not None:
                    server, running = None, server
                    running.stop()
                server = Server(block, work, env)
            else:
                assert block.mark in ("", "dry"), f"{block.where}: unknown marker {block.mark!r}"
                _run(block, work, env)
    finally:
        if server is not None:
            server.stop()


def _run(block: Block, work: Path, env: dict[str, str]) -> None:
    script = "set -euo pipefail\n" + (DRY_PRELUDE if block.mark == "dry" else "") + block.body
    done = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (
        f"{block.where} failed ({done.returncode}):\n{block.body}\n"
        f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    )


class Server:
    """A background block: started in its own process group, stopped with SIGTERM."""

    def __init__(self, block: Block, work: Path, env: dict[str, str]) -> None:
        self.block = block
        self.log = work / f"server-{block.line}.log"
        lines = [line for line in block.body.replace("\\\n", " ").splitlines() if line.strip()]
        assert len(lines) == 1, f"{block.where}: a background block is one command"
        # bash runs it as a child and hands it SIGTERM, then exits with its status
        script = (
            f"{lines[0]} &\nchild=$!\n"
            "trap 'kill -TERM $child; wait $child; exit $?' TERM\nwait $child"
        )
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", script],
                cwd=work,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        first = self.process.stdout.readline()
        assert first, f"{block.where}: the server printed nothing:\n{self.log.read_text()}"

    def stop(self) -> None:
        assert self.process.poll() is None, (
            f"{self.block.where}: the server exited early:\n{self.log.read_text()}"
        )
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise
        assert code == 0, f"{self.block.where}: exited {code}:\n{self.log.read_text()}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_on_the_page_runs(page, tmp_path):
    run_page(page, scratch_checkout(tmp_path))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_are_only_in_sh_blocks(page):
    for block in blocks(page):
        if block.lang not in NOT_COMMANDS:
            assert not COMMAND_WORDS.search(block.body), (
                f"{block.where}: a command in a `{block.lang or 'untagged'}` block: tag it sh"
            )


def test_the_pages_do_not_point_outside_the_repository():
    for page in PAGES:
        assert "../shared" not in page.read_text(), f"{page.name} links outside the repository"


def test_every_relative_link_resolves():
    link = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")
    for page in PAGES:
        for target in link.findall(page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_configuration_page_is_current():
    assert docs_config.PAGE.read_text() == docs_config.render(), (
        "docs/configuration.md is stale: run python -m bridge.docs_config"
    )


def test_every_setting_says_what_it_is():
    # the generated page and --help are only as good as each field's description
    from bridge.environment import is_internal

    for name, info in BridgeConfig.model_fields.items():
        assert is_internal(info) or info.description, f"BridgeConfig.{name} has no description"


def test_docs_config_rewrites_a_stale_page_and_check_says_so(tmp_path, monkeypatch, capsys):
    page = tmp_path / "configuration.md"
    page.write_text(docs_config.render().replace("--lead-ms", "--lead"))
    monkeypatch.setattr(docs_config, "PAGE", page)
    assert docs_config.main(["--check"]) == 1
    assert "is not current: run python -m bridge.docs_config" in capsys.readouterr().err
    assert docs_config.main([]) == 0
    assert docs_config.main(["--check"]) == 0
    assert page.read_text() == docs_config.render()


def test_the_readme_stays_a_guide():
    text = (ROOT / "README.md").read_text()
    lines = text.count("\n")
    assert lines < 400, f"README.md has {lines} lines: move the detail to docs/"
    assert "## Contents" in text
    headings = [line for line in text.splitlines()[:150] if line.startswith("## ")]
    assert "## Connecting a real bot" in headings  # within the first screenfuls
    assert "## Writing a responder" in headings
    dated = re.search(r"\b20\d\d-\d\d-\d\d\b", text)
    assert not dated, "dated history belongs in docs/benchmarks.md"


NOISE = str(ALSA / "Noise.wav")


@pytest.mark.parametrize(
    ("mark", "command", "problem"),
    [
        ("dry", "speakbridge serve --no-such-flag", "unrecognized arguments: --no-such-flag"),
        ("dry", "make no-such-target", "No rule to make target"),
        ("dry", "python -m benchmarks.nosuch --ramp 1", "no module benchmarks.nosuch"),
        ("dry", "speakbridge launch --lead-ms fast", "invalid float value: 'fast'"),
        ("dry", "SPEAKBRIDGE_PORT=abc speakbridge serve", "SPEAKBRIDGE_PORT='abc'"),
        ("", "speakbridge simulate ws://127.0.0.1:9/bots/x --wav " + NOISE, "cannot connect"),
        ("background", "speakbridge serve --port 0 --lead-ms 0", "the server printed nothing"),
        ("background", "speakbridge serve --port 0\nspeakbridge serve", "is one command"),
        ("tested-by tests/no_such_test.py", "nginx -s reload", "no test"),
        ("tested-by tests/test_cli.py", "nginx -s reload", "never reads the page"),
    ],
)
def test_a_page_with_a_broken_command_fails(tmp_path, mark, command, problem):
    page = tmp_path / "page.md"
    marker = f"<!-- doc-test: {mark} -->\n" if mark else ""
    page.write_text(f"# A page\n\n{marker}```sh\n{command}\n```\n")
    with pytest.raises(AssertionError, match=problem):
        run_page(page, scratch_checkout(tmp_path))
