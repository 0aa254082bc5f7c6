# Slipway — the two commands of the README, and a few helpers.
#   make run    build and start the daemon with config/slipway.dev.yaml (data in .dev/)
#   make test   install and start what the tests need, then run every test
SWIFT ?= swift
DEV_CONFIG := config/slipway.dev.yaml
DEV_SECRET := .dev/secrets/webhook

.PHONY: run test build release bench check-config format clean

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
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

check-config: build
	scripts/dev-secret.sh $(DEV_SECRET)
	.build/debug/slipway config check --config $(DEV_CONFIG)

bench:
	Benchmarks/run.sh

format:
	$(SWIFT) format --in-place --recursive Sources Tests Package.swift

clean:
	rm -rf .build .dev
