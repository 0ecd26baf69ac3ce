# speakbridge: `make demo` and `make test` work on a fresh machine (Debian, Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEB_PACKAGES := espeak-ng sox alsa-utils curl haproxy nginx openssl gcc python3-dev

.PHONY: setup system-packages test lint demo bench bench-generator bench-peer bench-floor bench-ab \
	bench-bots bench-lb bench-turns bench-smart-turn soak clean

setup: system-packages $(VENV)/.installed

# Debian packages: espeak-ng and sox for speech, alsa-utils for the recordings in
# /usr/share/sounds/alsa that the demo and the tests speak, curl for the docs' commands
# (tests/test_docs.py runs them); haproxy, nginx and openssl for the load-balancer and
# TLS-proxy tests (run by the tests, never as services); gcc and python3-dev build the
# VAD's and the input pipeline's compiled core (bridge/audio/_vadcore.c), the pacer's clock
# (bridge/audio/_pacer.c), the audio frames' parser and path (bridge/wire/_frames.c) and the
# responders' hook dispatch (bridge/server/_dispatch.c) at pip install. Installed when run
# as root.
system-packages:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run: sudo apt-get install$$missing)"; exit 1; fi; \
	fi

# The venv module is a separate Debian package (python3-venv): named when it is missing,
# installed when run as root (ROOT= on the command line acts as a user would).
ROOT ?= $(shell [ "$$(id -u)" = 0 ] && echo yes)
$(VENV)/.installed: pyproject.toml $(wildcard bridge/*/*.c bridge/*.h bridge/*/*.h)
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  if [ -n "$(ROOT)" ] && command -v apt-get >/dev/null; then \
	    echo "$(PYTHON) -m venv failed: installing python3-venv"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
	      >/dev/null && $(PYTHON) -m venv $(VENV); \
	  else \
	    echo "$(PYTHON) -m venv failed: install the venv module, e.g. on Debian or Ubuntu:" \
	      "sudo apt-get install python3-venv"; exit 1; \
	  fi; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

lint: setup
	$(VENV)/bin/ruff check bridge tests benchmarks scripts

test: lint
	$(PY) -m pytest -q

demo: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/demo.sh

# Benchmarks (about 30 minutes; installs pipecat-ai, ~500 MB): micro-benchmarks, then capacity
# at the framings bots use (100 ms v2 chunks, 20 ms, 10 ms gen3 frames): a ramp of live-echo
# sessions against a server pinned to one core (at 20 and 10 ms a second ramp at a 60 ms
# prebuffer: paired frames), then the pipecat peer, each stopping at its first unsustained
# step, after a check that the generator keeps time at 2000 sessions; the table, JSON and
# plot land in benchmarks/results/.
RESULT := benchmarks/results/$(shell date +%F)-$(shell hostname)
bench: setup
	$(VENV)/bin/pip install -q -e '.[bench,peer]'
	$(PY) -m benchmarks.micro --rounds 20 --out $(RESULT)-micro.json
	$(PY) -m benchmarks.capacity --duration 15 --out $(RESULT)-capacity.json
	$(PY) -m benchmarks.plot $(RESULT)-capacity.json --out $(RESULT)-capacity.png

# The generator alone: 100 ms chunks from up to 2000 bots into the plainest echo (picows);
# no late tick and its CPU under 90 % of its core mean it is not what limits a ramp.
bench-generator: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) -m benchmarks.load --skip-speakbridge --floor picows --bot v2 --ramp 500,1000,1500,2000 \
	  --duration 15 --out $(RESULT)-generator.json

# The same, side by side with a pipecat echo pipeline (installs pipecat-ai: ~500 MB).
bench-peer: setup
	$(VENV)/bin/pip install -q -e '.[bench,peer]'
	$(PY) -m benchmarks.load --ramp 10,25,50,75,100 --duration 15 --compare --stop-on-fail \
	  --out $(RESULT)-peer.json
	$(PY) -m benchmarks.plot $(RESULT)-peer.json --out $(RESULT)-peer.png

# The conversation benchmark: turn-taking through the real server (docs/turns.md), with
# the machinery's cost per chunk and a plot of both policies.
bench-turns: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) -m benchmarks.turns --micro --parallel 1 --out $(RESULT)-turns.json \
	  --plot $(RESULT)-turns.png

# Smart Turn v3 against the acoustic policy on the same corpus: onnxruntime, and the model
# file from the pipecat-ai wheel without its dependencies (docs/turns.md).
bench-smart-turn: setup
	$(VENV)/bin/pip install -q -e '.[smart-turn]'
	$(VENV)/bin/pip install -q --no-deps 'pipecat-ai>=1.14'
	$(PY) -m benchmarks.smart_turn --out $(RESULT)-smart-turn.json

# The floor: the same ramp against the plainest echo on websockets and on picows, to see
# what the WebSocket library alone costs a session.
bench-floor: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) -m benchmarks.load --ramp 10,25,50,75,100,150 --duration 12 \
	  --floor websockets --floor picows --out $(RESULT)-floor.json
	$(PY) -m benchmarks.plot $(RESULT)-floor.json --out $(RESULT)-floor.png

# A/B: the ramp at 100 sessions against two or more git revisions (`.`: the working tree),
# each from its own worktree, alternating for four rounds: a change's worth on a noisy host.
REVS ?= HEAD .
bench-ab: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) -m benchmarks.ab $(REVS) --rounds 4 --out $(RESULT)-ab.json -- \
	  --ramp 100 --duration 15 --warmup 3

# The fidelity matrix: every bot generation x rate x one socket or two, echoed (a minute).
bench-bots: setup
	$(PY) -m benchmarks.bots --out $(RESULT)-bots.json

# What a load balancer adds per session (a few minutes): HAProxy and nginx, plain and with TLS,
# against the bridge direct, side by side round by round (docs/deployment.md).
bench-lb: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) -m benchmarks.lb --sessions 40 --duration 10 --rounds 3 --out $(RESULT)-lb.json

# Soak (30 minutes): 50 live sessions on the server defaults (40 ms prebuffer, 80 ms lead); zero
# underruns and flat memory expected.
soak: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) -m benchmarks.load --ramp 50 --duration 1800 --prebuffer-ms 40 --retry-steal-ms 0 \
	  --out $(RESULT)-soak.json

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
