# Two commands on a fresh machine: `make serve` and `make test`. Both install first (once).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.libra-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install deploy-tools serve test lint loadtest throughput nano-eval nano-train rl-demo nano-policy clean install-check image-cpu-check \
	rule-first direct-first nano-judge-direct direct-first-nano scalar-bench rubric-bench \
	package-check throughput-check docs-check

install: $(STAMP)

# Re-install only when the project's dependencies change; otherwise this is a no-op.
# docker/install.sh is the one recipe: docker/Dockerfile.cpu runs the same script. A failed install
# leaves no stamp, so the venv is never marked installed half-made.
$(STAMP): pyproject.toml client/pyproject.toml docker/install.sh docker/torch-source.sh
	@rm -f $(STAMP)
	bash docker/install.sh $(VENV) cpu,dev
	@touch $(STAMP)

# The deployment checks validate docker/ with real tools (no Docker engine needed): docker-compose,
# promtool and nginx, from Debian's packages when they are missing and apt-get can install them.
deploy-tools:
	@if ! command -v docker-compose >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1 \
	    || ! PATH="$$PATH:/usr/sbin" command -v nginx >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing docker-compose, promtool and nginx (Debian packages docker-compose, prometheus, nginx)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      docker-compose prometheus nginx >/dev/null; \
	  else \
	    echo "docker-compose, promtool or nginx missing: the deployment checks will be skipped (CI fails instead)"; \
	  fi; \
	fi

serve: install
	$(VENV)/bin/libra-serve serve --host $(HOST) --port $(PORT)

test: install deploy-tools
	$(PY) -m pytest -q

# Locust RL-trainer load test (starts the nano judge if nothing serves on 127.0.0.1:8000); report in reports/.
loadtest: install
	$(PY) loadtest/run.py $(LOADTEST_ARGS)

# The packaging tier (tests/packaging): the GPU image's dependencies resolved by pip against PyPI for vLLM's
# image (30-90 s), and the client installed alone into a fresh Python 3.10 venv. Not in `make test`; CI runs it.
package-check: install
	LIBRA_PACKAGE_CHECK=1 $(PY) -m pytest -q -rs -p no:cacheprovider tests/packaging

# /docs and /redoc on an air-gapped cluster (tests/browser): the real app on a FakeEngine over a socket, loaded
# in headless Chromium (Debian's package, installed when missing) with every host but loopback cut, beside a
# control (FastAPI's default CDN page) that must come out blank. 30-50 s; screenshots in reports/docs-check/.
# Not in `make test` (which runs only the file's in-process checks).
docs-check: install
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium (Debian packages chromium, fonts-dejavu-core)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium fonts-dejavu-core >/dev/null; \
	  else \
	    echo "chromium missing and apt-get unavailable (or not root): the browser checks will fail"; \
	  fi; \
	fi
	LIBRA_BROWSER_TESTS=1 $(PY) -m pytest -q -s -rs -p no:cacheprovider tests/browser

# The side-by-side harness end to end on 48 items (tests/benchmarks): three engines of its own (raw AsyncLLM,
# libra-serve, vllm serve), so not in `make test`; CI runs it. `make throughput` is the full benchmark.
throughput-check: install
	LIBRA_BENCH_TESTS=1 $(PY) -m pytest -q -s -p no:cacheprovider tests/benchmarks

# Side-by-side throughput benchmark: raw AsyncLLM vs this service vs vllm serve + an OpenAI client
# (same model/items). Not `libra-serve bench`, which measures a judge's accuracy.
throughput: install
	$(PY) loadtest/throughput.py $(THROUGHPUT_ARGS)

lint: install
	$(VENV)/bin/ruff check service client libra_eval nano tests loadtest

# Accuracy of the bundled nano judge on its 1,000 held-out items, scored through the service.
nano-eval: install
	$(PY) -m nano.evaluate

# Retrain the nano judge from scratch (seeded; ~47 min on 2 cores). CI never does this.
nano-train: install
	$(PY) -m nano.train --out service/models/nano-judge

# Close the loop (docs/downstream.md): TRL's GRPOTrainer trains the nano policy on the nano judge's rewards
# from a libra-serve it starts (one arm, one seed; prints held-out accuracy before and after).
# RL_ARGS="--table" runs every arm x 3 seeds and DPO; RL_ARGS="--arm rule --seed 2" another arm.
rl-demo: install
	$(PY) -m nano.rl $(RL_ARGS)

# The cascades, measured (docs/api.md): hybrid's routes on cited answers and the nano world (~5 min);
# always-think against direct-first, 3 interleaved rounds, on a server whose judge answers without
# thinking (DIRECT_URL=http://host:8000: a Qwen3-family judge; no judge here can, docs/performance.md).
rule-first: install
	$(PY) -m libra_eval.rule_first --out docs/results/rule-first.json

direct-first: install
	$(PY) -m libra_eval.direct_first --url $${DIRECT_URL:?set DIRECT_URL to a server whose judge answers without thinking} \
	  --samples 3 --out docs/results/direct-first

# The nano judge retrained to answer both ways (~60 min; docs/performance.md): 500 steps of a 3,000-step
# schedule, then 2,500 more from there; then the same measurement on a server of its own (~10 min).
NANO_DIRECT ?= /tmp/nano-judge-direct
nano-judge-direct: install
	$(PY) -m nano.train --init service/models/nano-judge --direct-share 0.5 --per-example --steps 3000 --lr 1e-3 \
	  --stop-after 501 --eval-every 250 --threads 1 --out $(NANO_DIRECT)-500
	$(PY) -m nano.train --init $(NANO_DIRECT)-500 --direct-share 0.5 --per-example --steps 2500 --lr 7e-4 \
	  --seed 4321 --eval-every 250 --threads 2 --out $(NANO_DIRECT)

direct-first-nano: install
	$(PY) -m libra_eval.direct_first --serve "--model $(NANO_DIRECT) --judges-dir nano/judges --judge nano-direct \
	  --max-model-len 1024 --max-num-seqs 128" --thresholds 0.6,0.7,0.8,0.9,0.99 --samples 3 \
	  --out docs/results/direct-first-nano

# A scalar reward model through the service against vllm serve --runner pooling with verl's /classify client:
# same random Qwen3ForSequenceClassification, same items, 3 interleaved rounds (~6 min). SCALAR_BENCH_ARGS adds
# flags (e.g. --preset small, where the engine rather than the front end sets the pace).
scalar-bench: install
	$(PY) loadtest/scalar_bench.py --items 512 --rounds 3 --out docs/results/scalar-bench.json $(SCALAR_BENCH_ARGS)

# Rubric strategies on one server in the Qwen-vocabulary world: per_criterion (criterion last, shared prefix)
# against criterion_first (separate prompts) and holistic; 256 items x 8 criteria, 3 interleaved rounds.
rubric-bench: install
	$(PY) loadtest/rubric_bench.py --items 256 --criteria 8 --rounds 3 --out docs/results/rubric-bench.json

# Rebuild the nano policy's starting checkpoint (seeded SFT; nano/policy.py says how long). CI never does this.
nano-policy: install
	$(PY) -m nano.policy --out nano/models/nano-policy

# Where torch's CPU build comes from (docker/torch-source.sh), checked against a loopback stand-in of
# PyTorch's CPU index with pip's own config hidden (fresh venvs, ~2 min). FULL=1 adds the whole
# docker/install.sh into a fresh venv (minutes, ~4 GB; figures in reports/install-check.txt).
install-check: install
	LIBRA_INSTALL_CHECK=$(if $(FULL),full,1) $(PY) -m pytest -q -rs -p no:cacheprovider tests/install

# Build docker/Dockerfile.cpu for real, run its entrypoint and score through it: docker when a daemon
# answers, buildah otherwise (stand-in base from debootstrap). Minutes and GBs; logs in reports/image-cpu-check/.
image-cpu-check:
	bash docker/image-cpu-check.sh

# Ray Serve (service/ray_serve.py, docker/ray/): the `ray` extra through the same install recipe, then tests/ray on
# a local Ray (2 CPUs): configs and the KubeRay manifest checked, `libra-serve ray` run, two nano-judge replicas
# end to end (same verdicts, metrics, 429, an engine killed and its replica replaced). 7-16 min; not in `make test`.
RAY_STAMP := $(VENV)/.libra-ray-installed
.PHONY: test-ray
$(RAY_STAMP): $(STAMP)
	bash docker/install.sh $(VENV) cpu,dev,ray
	@touch $(RAY_STAMP)

# -s: the tests print their figures (lines starting [ray]).
test-ray: $(RAY_STAMP)
	LIBRA_RAY_TESTS=1 $(PY) -m pytest -q -s -p no:cacheprovider tests/ray

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
