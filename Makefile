# Thin wrappers over scripts/. See README.md.
.PHONY: all build generate presets verify lint test bench soak tools clean run lab lab-down

all: build

build:
	scripts/build.sh

tools:
	scripts/tools.sh

generate:
	scripts/generate.sh

presets:
	scripts/presets.sh

verify:
	scripts/verify.sh

lint:
	scripts/lint.sh

test:
	scripts/test.sh

bench:
	scripts/bench.sh

soak:
	scripts/soak.sh

clean:
	rm -rf bin .cache

run:
	scripts/run-local.sh

lab:
	scripts/lab.sh

lab-down:
	scripts/lab-down.sh
