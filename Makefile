# ephemeral.castle: `make demo` runs the main job against the lab, `make test` runs every check.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(CURDIR)/.lab/tools/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
SANITY_TREE := $(CURDIR)/.build/ansible_collections/ephemeral/castle
# The inventory castle-lab writes: CASTLE_LAB_INVENTORY, else $CASTLE_LAB_DIR/inventory for a lab outside .lab/,
# else inventories/lab. CASTLE_LAB_DIR, CASTLE_LAB_NET and CASTLE_LAB_OPENCLAW_USER select the lab (castle-lab reads them).
LAB_INVENTORY ?= $(or $(CASTLE_LAB_INVENTORY),$(if $(filter-out $(CURDIR)/.lab,$(abspath $(CASTLE_LAB_DIR))),$(abspath $(CASTLE_LAB_DIR))/inventory,inventories/lab))
# What `make demo` rebuilds after the bootstrap: a cluster, cluster node or machine of the lab's fleet.
DEMO_TARGET ?= castle

.PHONY: setup test demo lint sanity pytest build lab-up lab-down clean

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

# The lab, the fleet's cluster from nothing, then its phoenix rebuild; phoenix ends with each stage's duration.
# `castle-lab env` gives the playbooks the password of the inventory's ansible-vault encrypted values.
demo: setup
	castle-lab up
	eval "$$(castle-lab env)"; \
	  ansible-playbook -i $(LAB_INVENTORY) playbooks/bootstrap.yml; \
	  ansible-playbook -i $(LAB_INVENTORY) playbooks/phoenix.yml -e target=$(DEMO_TARGET)

lab-up: setup
	castle-lab up

lab-down:
	castle-lab down

clean: lab-down
	rm -rf .build tests/output
