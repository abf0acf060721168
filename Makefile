# etcdsafe — the two set-up commands from the README:
#   make demo   install what is needed, build, run the end-to-end demo on a throwaway etcd
#   make test   install what is needed, build, run every test (unit, integration, fuzz replay)
# Everything comes from Debian packages; `deps` installs only what is missing.

BUILD ?= build
JOBS ?= $(shell nproc)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

APT_PACKAGES := build-essential cmake pkg-config clang libclang-rt-14-dev \
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
  libssl-dev libzstd-dev zlib1g-dev libcurl4-openssl-dev nlohmann-json3-dev libcli11-dev \
  libspdlog-dev libfmt-dev libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev \
  etcd-server etcd-client openssl python3 procps time zstd util-linux \
  awscli python3-botocore \
  libabsl-dev libcpp-httplib-dev prometheus prometheus-alertmanager python3-prometheus-client systemd \
  libarchive-dev

.PHONY: all deps build test demo bench fuzz clean

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# s3rver (local S3 for the s3:// store tests) from npm into tools/node. Debian's
	@# nodejs+npm only when no npm is present (a NodeSource nodejs bundles its own npm).
	@if [ ! -x tools/node/node_modules/.bin/s3rver ]; then \
	  command -v npm >/dev/null || { $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm; }; \
	  npm ci --prefix tools/node --no-audit --no-fund; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j2 --timeout 600

demo: build
	tools/demo.sh $(BUILD)/etcdsafe

bench: build
	bench/run.sh $(BUILD)/etcdsafe

fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DETCDSAFE_FUZZ=ON -DETCDSAFE_WERROR=OFF -DETCDSAFE_TESTS=ON
	cmake --build build-fuzz -j$(JOBS) --target fuzz_bolt fuzz_wal fuzz_snap fuzz_manifest
	for t in bolt wal snap manifest; do build-fuzz/tests/fuzz/fuzz_$$t -max_total_time=$${FUZZ_SECONDS:-60} \
	  tests/fuzz/corpus/$$t || exit 1; done

clean:
	rm -rf $(BUILD) build-fuzz
