# Slipway — the two commands of the README, and a few helpers.
#   make run    build and start the daemon with config/slipway.dev.yaml (data in .dev/)
#   make test   install and start what the tests need (dockerd, registry, git server), then run every
#               test and a 30 s fuzz run of each parser (FUZZ_SECONDS=… to change)
SWIFT ?= swift
DEV_CONFIG := config/slipway.dev.yaml
DEV_SECRET := .dev/secrets/webhook

.PHONY: run test fuzz test-env-stop build release bench check-config format clean man install deb

build:
	scripts/install-deps.sh build
	$(SWIFT) build

release:
	scripts/install-deps.sh build
	$(SWIFT) build -c release

run: build
	scripts/dev-secret.sh $(DEV_SECRET)
	@echo ""
	@echo "  Webhook URL:     http://127.0.0.1:8080/webhooks/github  (content type application/json)"
	@echo "  Webhook secret:  $(CURDIR)/$(DEV_SECRET)  (paste its contents into GitHub's 'Secret' field)"
	@echo "  Event log:       $(CURDIR)/.dev/data/slipway.sqlite"
	@echo ""
	exec .build/debug/slipway serve --config $(DEV_CONFIG)

test:
	scripts/install-deps.sh test
	scripts/test-env.sh
	$(SWIFT) build --build-tests
	# Unit and in-memory tests first, on their own: the system tests block threads while they wait
	# on real processes, which would starve the unit tests' async work if they shared a process.
	$(SWIFT) test --skip-build --filter 'SlipwayCoreTests|SlipwayServerTests'
	set -a && . ./.test-env/env && set +a && $(SWIFT) test --skip-build --filter SystemTests
	Fuzz/run.sh $(FUZZ_SECONDS)

# libFuzzer + AddressSanitizer over every parser; `make test` runs each target 30 s, this runs them 10 min.
FUZZ_SECONDS ?= 30
fuzz:
	Fuzz/run.sh 600

test-env-stop:
	scripts/test-env.sh stop

check-config: build
	scripts/dev-secret.sh $(DEV_SECRET)
	.build/debug/slipway config check --config $(DEV_CONFIG)

bench:
	Benchmarks/run.sh

format:
	$(SWIFT) format --in-place --recursive Sources Tests Fuzz/Sources Package.swift

clean:
	rm -rf .build .dev

# The man page, generated from the same definitions as --help (swift-argument-parser's plugin).
man:
	$(SWIFT) package --allow-writing-to-package-directory generate-manual
	@mkdir -p .build/man && cp .build/plugins/GenerateManual/outputs/slipway/slipway.1 .build/man/slipway.1
	@echo "man page: .build/man/slipway.1 (install: sudo install -m 0644 .build/man/slipway.1 /usr/local/share/man/man1/)"

# A release binary with the Swift runtime linked in, installed as a systemd service.
install:
	scripts/install-deps.sh build
	$(SWIFT) build -c release --static-swift-stdlib
	scripts/install.sh --binary .build/release/slipway

deb:
	scripts/install-deps.sh build
	$(SWIFT) build -c release --static-swift-stdlib
	scripts/make-deb.sh --binary .build/release/slipway
