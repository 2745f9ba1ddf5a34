# syntax=docker/dockerfile:1
# Build: docker build -t pai .   Run: docker run --env-file .env -p 8000:8000 pai
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# (llama-cpp-2 will need: apt-get install cmake clang libclang-dev)
# No protoc needed: protox compiles the .proto files in pure Rust.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pai \
 && cp target/release/pai /usr/local/bin/pai

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pai \
 && useradd --system --uid 10001 --gid pai --home-dir /app --create-home pai \
 && install -d -o pai -g pai /app/data
COPY --from=build /usr/local/bin/pai /usr/local/bin/pai
WORKDIR /app
USER 10001:10001
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
ENTRYPOINT ["pai"]
CMD ["run"]
