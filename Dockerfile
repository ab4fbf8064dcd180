# The shepseg worker image for `--executor fargate` (the same binary is the coordinator).
#   docker build -t shepseg .
#   docker run --rm shepseg --help
# Stage 1 builds with Debian 12's GDAL; stage 2 is a slim runtime with only GDAL's libraries.
FROM rust:1-bookworm AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libgdal-dev pkg-config build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p shepseg-cli \
 && install -m 0755 target/release/shepseg /usr/local/bin/shepseg

FROM debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libgdal32 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/shepseg /usr/local/bin/shepseg
# Workers need no privileges.
RUN useradd --system --uid 10001 shepseg
USER shepseg
ENTRYPOINT []
CMD ["shepseg", "--help"]
