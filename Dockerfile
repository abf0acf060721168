# etcdsafe container image: the `etcdsafe` binary on Debian 12, built from Debian packages
# exactly as `make build` does (see the Makefile's APT_PACKAGES).
#
#   docker build -t registry.example.com/etcdsafe:0.2.0 .
#   docker run --rm registry.example.com/etcdsafe:0.2.0 version
#
# Not built or tested in this repository's CI (no container registry is reachable there):
# keep it plain, and build it once by hand after changing the dependencies.

# ---- build stage -------------------------------------------------------------------------
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libssl-dev libzstd-dev zlib1g-dev nlohmann-json3-dev libcli11-dev \
      libyaml-cpp-dev libabsl-dev libcpp-httplib-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only the sources (the checkout may hold large build-* directories).
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY src/ src/
COPY cli/ cli/
COPY bench/ bench/
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DETCDSAFE_TESTS=OFF -DETCDSAFE_BENCH=OFF \
 && cmake --build build -j"$(nproc)" --target etcdsafe \
 && strip --strip-debug -o /etcdsafe build/etcdsafe \
 && /etcdsafe --version

# ---- runtime stage -----------------------------------------------------------------------
FROM debian:12-slim
# The shared libraries the binary links (gRPC, protobuf, abseil and yaml-cpp are linked
# statically, cmake/StaticDeps.cmake; apt adds the libraries' own dependencies), CA
# certificates for S3 and webhooks over HTTPS, time zones for `timezone:` in agent.yaml, and
# etcd-server: the restore drill starts a scratch etcd from the backup.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libssl3 libzstd1 zlib1g libcpp-httplib0.11 \
      ca-certificates tzdata etcd-server \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 etcdsafe \
 && useradd --system --uid 10001 --gid etcdsafe --home-dir /var/lib/etcdsafe --shell /usr/sbin/nologin etcdsafe \
 && install -d -o etcdsafe -g etcdsafe -m 0700 /var/lib/etcdsafe
COPY --from=build /etcdsafe /usr/local/bin/etcdsafe
# A non-root default. deploy/kubernetes/ overrides it with runAsUser: 0 to read kubeadm's
# root-only etcd client key (see the notes in deploy/kubernetes/agent.yaml).
USER etcdsafe
WORKDIR /var/lib/etcdsafe
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/etcdsafe"]
CMD ["agent", "--config", "/etc/etcdsafe/agent.yaml"]
