# ephemeral.castle: `make demo` runs the main job against the lab, `make test` runs every check.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(CURDIR)/.lab/tools/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
SANITY_TREE := $(CURDIR)/.build/ansible_collections/ephemeral/castle
# Until playbooks/phoenix.yml exists: prove the lab, then take its cluster to GitOps.
DEMO_PLAYBOOKS ?= playbooks/lab_check.yml playbooks/flux.yml

.PHONY: setup test demo lint sanity pytest molecule build lab-up lab-down clean

setup:
	@scripts/setup.sh

test: setup
	@scripts/test.sh

lint: setup
	mkdir -p .cache/lint-home && HOME=$(CURDIR)/.cache/lint-home ansible-lint

sanity: setup
	@scripts/sanity.sh

pytest: setup
	pytest

build: setup
	ansible-galaxy collection build --force --output-path .build

demo: setup
	castle-lab up
	for playbook in $(DEMO_PLAYBOOKS); do ansible-playbook -i inventories/lab $$playbook; done

lab-up: setup
	castle-lab up

lab-down:
	castle-lab down

clean: lab-down
	rm -rf .build tests/output
