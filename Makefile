# The entry points a newcomer types. See README.md.
SHELL := /bin/bash

.PHONY: demo test cluster cluster-down crds setup

## make demo: build, start a local control plane, the operator, the proxy and two demo
## backends, and show requests routed through the proxy (DEMO_EXIT=1: check and exit).
demo:
	@tests/demo.sh

## make test: formatting, clippy, unit, integration and end-to-end tests, helm checks.
test:
	@tests/test.sh

## make cluster / make cluster-down: the local control plane in the background;
## kubeconfig in .switchyard/kubeconfig.
cluster:
	@tests/cluster.sh up

cluster-down:
	@tests/cluster.sh down

## make crds: regenerate crds/manifests and the chart's crds/ from the Rust types.
crds:
	cargo run --quiet -p switchyard-crds --bin crdgen

## make setup: install packages and build the control plane binaries (done by demo/test too).
setup:
	@tests/setup.sh >/dev/null
