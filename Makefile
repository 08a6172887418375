# The README's two commands are `make demo` and `make test`; both set up what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv browser datasets demo up down status test test-fast test-load bench lint models

venv: $(STAMP)

# The server (pyproject.toml) and, beside it, the client: its own distribution (client/pyproject.toml).
$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[worker,dev]' -e './client[demo]'
	touch $(STAMP)

# Start the embedded stack (Redis, S3, API, workers, beat) in the background, supervised: a process
# that dies is restarted; on a partly running stack, start what is missing.
up: venv
	$(PY) -m deploy.devstack up

# Every process of the stack: state, pid, restarts, uptime.
status: venv
	@$(PY) -m deploy.devstack status

down:
	@if [ -x $(PY) ]; then $(PY) -m deploy.devstack down; fi

# The main job end to end: a photo becomes a painting through the real queue.
demo: up
	$(PY) -m client.demo

# Headless Chromium for the gallery's browser test, and fonts with Chinese, Japanese and Korean
# glyphs (without them Chromium draws CJK text as empty boxes): Debian's packages, installed once
# (playwright drives the browser and never downloads one of its own).
browser:
	@test -x /usr/bin/chromium && dpkg -s fonts-noto-cjk >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium fonts-noto-cjk; }

# The built-in dataset debian-images: photographs and artworks that Debian's wallpaper packages
# carry (installed once; shared/debian_images.py says why these three), listed with each image's
# licence in .artforge/datasets/debian-images.json (or ARTFORGE_DEBIAN_IMAGES_MANIFEST).
DEBIAN_IMAGE_PACKAGES := mate-backgrounds plasma-workspace-wallpapers desktop-base
datasets: venv
	@dpkg -s $(DEBIAN_IMAGE_PACKAGES) >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_IMAGE_PACKAGES); }
	$(PY) -m workers.data.debian_images --packages $(DEBIAN_IMAGE_PACKAGES)

# Two test processes share the two cores: much of the suite waits on servers, leases and timeouts.
# Each test file runs whole in one process (its fixtures are made once), and every process, the
# service's workers included, keeps to one thread: two thread pools of two on two cores (torch's,
# onnxruntime's) slow each other many times over.
PYTEST := OMP_NUM_THREADS=1 ARTFORGE_TORCH_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile

test: venv browser
	$(PYTEST)

test-fast: venv browser
	$(PYTEST) -m 'not slow'

# The load tests at full size: 5,000 jobs through the whole service (make test runs 300), and a
# Redis restart under 1,000 queued jobs (make test queues 200).
test-load: venv
	ARTFORGE_LOAD_JOBS=5000 $(PY) -m pytest tests/chaos/test_load.py -m load -s
	ARTFORGE_CHAOS_RESTART_JOBS=1000 $(PY) -m pytest tests/chaos/test_redis_restart.py -s

# Train the default models that ship inside the package (shared/assets/models/): the creation model
# "abstract" (hours on 2 cores; resumable: run it again after an interruption), the upscaler and
# the restoration model.
models: venv datasets
	$(PY) -m workers.training.default_models all

bench: venv
	$(PY) -m bench.run_all

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
