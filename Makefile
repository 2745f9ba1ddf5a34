SHELL := /bin/bash
.DEFAULT_GOAL := help

# Cache build output outside the clone: a clean release build takes long.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/pai/target

# pai reads .env itself but never overrides a variable that is already set, so
# take the URLs from .env (when there) before the defaults below shadow them.
dotenv = $(if $(wildcard .env),$(shell sed -n 's/^$(1)=//p' .env | tail -n1 | tr -d '"'))
ifeq ($(origin DATABASE_URL),undefined)
  ifneq ($(call dotenv,DATABASE_URL),)
    DATABASE_URL := $(call dotenv,DATABASE_URL)
  endif
endif
ifeq ($(origin AMQP_URL),undefined)
  ifneq ($(call dotenv,AMQP_URL),)
    AMQP_URL := $(call dotenv,AMQP_URL)
  endif
endif

export DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/pai?sslmode=disable
export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/%2f
# Integration tests create (and drop) their own pai_test_* databases from here.
export PAI_TEST_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable
export PAI_TEST_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/%2f
# Default models (scripts/install-models.sh puts them here; tests read them too).
export PAI_MODELS_DIR ?= $(HOME)/.cache/pai/models
export EMBEDDING_MODEL_PATH ?= $(PAI_MODELS_DIR)/all-minilm-l6-v2
export LLM_MODEL_PATH ?= $(PAI_MODELS_DIR)/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf

PAI := $(CARGO_TARGET_DIR)/release/pai

.PHONY: help deps services models build web web-types run test test-web test-k8s fuzz lint fmt migrate doctor bench-auth bench-corpus bench-ingest bench-search bench-ask bench-mail bench-shard bench-import bench-web bench docker clean-test-dbs env-file

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

deps: ## install missing Debian build packages
	@bash scripts/ensure-build-deps.sh

services: ## make PostgreSQL and RabbitMQ reachable (installs/starts local ones)
	@bash scripts/ensure-services.sh

models: ## install the default models when missing
	@bash scripts/install-models.sh

build: deps ## release build of the pai binary
	cargo build --release -p pai

web: ## build the web app (frontend/out) when missing or stale
	@bash -c '. scripts/lib/stack.sh && . scripts/lib/web.sh && ensure_web_build'

web-types: ## regenerate the web app's API types from the OpenAPI document
	cargo build -p pai
	bash scripts/web-types.sh

env-file: # create .env with a random JWT_SECRET_KEY when there is none
	@if [ ! -f .env ] && [ -z "$${JWT_SECRET_KEY:-}" ]; then \
	  key=$$(head -c 48 /dev/urandom | base64 | tr -d '\n/+='); \
	  sed "s|^JWT_SECRET_KEY=.*|JWT_SECRET_KEY=$$key|" .env.example > .env; \
	  chmod 600 .env; \
	  echo "make: created .env from .env.example with a random JWT_SECRET_KEY"; \
	fi

run: deps services models build web env-file ## migrate, then run every service and the web app in one process
	$(PAI) migrate
	exec $(PAI) run

test: deps models ## fmt check, clippy, all tests, the web app's types and browser tests, the deployment manifests (what CI runs)
	@DATABASE_URL="$$PAI_TEST_DATABASE_URL" AMQP_URL="$$PAI_TEST_AMQP_URL" bash scripts/ensure-services.sh
	$(MAKE) --no-print-directory test-k8s
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace
	$(MAKE) --no-print-directory test-web

test-k8s: ## k8s/ overlays rendered, validated (Kubernetes schemas, operators' CRDs) and linted; docker compose config (offline)
	bash scripts/k8s-check.sh

test-web: ## the web app: API types up to date, typecheck, Playwright in Debian's chromium on a running stack
	cargo build -p pai -p pai-fake-google
	bash scripts/web-types.sh --check
	cd frontend && npm run typecheck
	AMQP_URL="$$PAI_TEST_AMQP_URL" bash scripts/web-test.sh

fuzz: deps models ## schemathesis over every API operation on a running stack (FUZZ_EXAMPLES per operation, default 30)
	@DATABASE_URL="$$PAI_TEST_DATABASE_URL" AMQP_URL="$$PAI_TEST_AMQP_URL" bash scripts/ensure-services.sh
	cargo build --workspace
	AMQP_URL="$$PAI_TEST_AMQP_URL" bash scripts/fuzz.sh

lint: ## fmt check and clippy
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	cargo fmt --all

migrate: services build ## apply database migrations
	$(PAI) migrate

doctor: deps ## diagnose PostgreSQL, RabbitMQ, models, disk
	cargo run -p pai -- doctor

bench-auth: deps services ## auth benchmark (release build)
	cargo build --release -p pai
	cargo build --release -p pai-auth --example argon2_rate
	bash scripts/bench-auth.sh

bench-corpus: deps services models ## ingest pages/s, recall@5 per search mode, search p50/p99 idle and under ingest (real corpus)
	cargo build --release -p pai
	cargo run --release -p pai --example bench_corpus

bench-ingest: deps services models ## embedding tokens/s (gRPC vs direct vs f32; every engine single-threaded per pass), ingest pages/s and stage times: corpus + 500 generated 10-page PDFs
	cargo build --release -p pai
	cargo run --release -p pai-inference --example embed_bench
	RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 cargo run --release -p pai-inference --example embed_bench -- engines
	cargo run --release -p pai --example bench_ingest -- $(or $(COUNT),500)

bench-search: deps services models ## search p50/p99 at 16 clients on 1,000 users x 200 chunks and 1 user x 100k chunks, vs direct, and under ingest
	cargo build --release -p pai
	cargo run --release -p pai --example bench_search

bench-ask: deps services models ## answers: tokens/s and first token vs llama-cpp-2 direct, quality (r/f/c, refusals) vs whole chunks, 8 askers
	cargo build --release -p pai
	cargo run --release -p pai --example bench_ask

bench-mail: deps services models ## mail: full sync of 10,000 generated messages from the fake Google vs MIME parse rate; to searchable vs embedding rate
	cargo build --release -p pai
	cargo run --release -p pai --example bench_mail -- $(or $(COUNT),10000)

bench-import: deps services models ## import of an older SQLite install (100 users, 2,000 PDFs, 50,000 emails, 5,000 queries) vs one COPY per table and API uploads
	cargo build --release -p pai
	cargo run --release -p pai --example bench_import -- $(or $(USERS),100) $(or $(DOCUMENTS),2000) $(or $(EMAILS),50000) $(or $(QUERIES),5000)

bench-shard: deps services models ## search through 1, 2 and 3 shards in one process at 16 clients (routing's cost), and one shard's rebuild of 100,000 chunks
	cargo build --release -p pai
	cargo run --release -p pai --example bench_shard

bench-web: deps services models ## web app: JS per route (gzip), ask page time to interactive, Ask to first token on screen vs the API's
	cargo build -p pai
	AMQP_URL="$$PAI_TEST_AMQP_URL" bash scripts/bench-web.sh

bench: bench-auth bench-corpus bench-ingest bench-search bench-ask bench-mail bench-shard bench-import bench-web ## all benchmarks

docker: ## build the container images
	docker compose build

clean-test-dbs: ## drop leftover pai_test_* databases
	@if ! command -v psql >/dev/null; then echo "clean-test-dbs: psql not installed, nothing dropped"; exit 0; fi; \
	dbs=$$(psql "$$PAI_TEST_DATABASE_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'pai\_test\_%'"); \
	for db in $$dbs; do \
	  psql "$$PAI_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$$db\" WITH (FORCE)" && echo "dropped $$db"; \
	done; \
	echo "clean-test-dbs: $$(wc -w <<< "$$dbs") database(s) dropped"
