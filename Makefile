# The two commands of the README: `make quickstart` and `make test`.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15

.PHONY: zoo-docs install quickstart lint test test-tensorflow test-jax test-tensorflow-methods test-tensorflow-others \
	test-jax-methods test-jax-others test-large test-large-tensorflow test-large-jax \
	bench bench-throughput bench-cifar10 clean fuzz

# pip byte-compiles every file it installs one at a time (about 70 s for TensorFlow, JAX and the rest on 2 cores);
# compileall does the same work on every core (about 45 s).
$(STAMP): requirements.txt requirements-test.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --no-compile -r requirements-test.txt
	$(BIN)/pip install -q --no-compile --no-deps -e .
	$(BIN)/python -m compileall -q -j0 $$($(BIN)/python -c "import sysconfig; print(sysconfig.get_path('purelib'))") > /dev/null
	touch $(STAMP)

install: $(STAMP)

# Pretrain -> evaluate -> export -> reload -> fine-tune on the digits scikit-learn ships.
quickstart: $(STAMP)
	$(BIN)/keras-ssl quickstart --output quickstart_report

# Lint and format check (ruff, configured in pyproject.toml), then the default suite once per backend. Slow tests
# are marked `large`. Each backend's suite runs in two parts of about equal time, tests/methods and the rest, all
# four side by side: much of a test's time is single-threaded tracing, so four processes keep 2 cores busy until
# the end. Each part's output is printed as one block.
test: lint
	$(MAKE) -j4 --output-sync=target test-tensorflow-methods test-tensorflow-others test-jax-methods test-jax-others

test-tensorflow-methods test-jax-methods: test-%-methods: $(STAMP)
	KERAS_BACKEND=$* $(PYTEST) -m "not large" tests/methods

test-tensorflow-others test-jax-others: test-%-others: $(STAMP)
	KERAS_BACKEND=$* $(PYTEST) -m "not large" tests --ignore=tests/methods

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-tensorflow: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) -m "not large" tests

test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PYTEST) -m "not large" tests

# The default suite under PyTorch (CPU build, installed on first use). Tests marked `savedmodel` are skipped
# there: keras_ssl.export writes a TensorFlow SavedModel, which Keras cannot write from torch.
.PHONY: test-torch
test-torch: $(STAMP)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	KERAS_BACKEND=torch $(PYTEST) -m "not large" tests

# The slow tests (end-to-end runs, every method on two replicas, every killed-and-resumed method), both backends.
test-large: $(STAMP)
	$(MAKE) -j2 --output-sync=target test-large-tensorflow test-large-jax

test-large-tensorflow: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) -m large tests

test-large-jax: $(STAMP)
	KERAS_BACKEND=jax $(PYTEST) -m large tests

# keras_ssl beside lightly (SimCLR step), KerasHub (BertMaskedLM) and a NumPy kNN, alternating, medians of 5 rounds
# (bench/cpu_side_by_side.py -> bench/results/cpu_side_by_side.json). lightly and keras-hub get their own
# environments on first use (bench/setup_lightly_env.sh, bench/setup_keras_hub_env.sh).
bench: $(STAMP)
	$(BIN)/python bench/cpu_side_by_side.py

bench-throughput: $(STAMP)
	$(BIN)/python bench/throughput.py

bench-cifar10: $(STAMP)
	$(BIN)/python bench/cifar10_pretrain.py

clean:
	rm -rf $(VENV) build *.egg-info quickstart_report .cache

# docs/zoo.md and zoo/*/README.md from the cards (tests fail when they are stale).
zoo-docs: $(STAMP)
	$(BIN)/python -m keras_ssl.presets.render docs/zoo.md

# Fuzz the card and metadata parsers for FUZZ_TIME seconds over a copy of the seed corpus
# (libFuzzer adds its finds to the copy, not to tests/fuzz/corpus/); crashes go to build/fuzz/.
FUZZ_TIME ?= 60
fuzz: $(STAMP)
	$(BIN)/pip install -q atheris
	mkdir -p build/fuzz
	corpus=$$(mktemp -d); trap 'rm -rf "$$corpus"' EXIT; \
	cp tests/fuzz/corpus/* "$$corpus"/ && \
	$(BIN)/python tests/fuzz/fuzz_parsers.py "$$corpus" -max_total_time=$(FUZZ_TIME) -artifact_prefix=build/fuzz/ -print_final_stats=1
