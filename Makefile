# tollgate — the two commands a newcomer needs are `make demo` and `make test`.
.PHONY: demo test setup lint release bench bench-load fuzz fuzz-replay clean

# Run the self-contained demo (prints URLs to try).
demo:
	cargo run --release -- demo

# Install the test dependencies (nginx, promtool, Python and npm packages)
# and run the whole test suite (the microbenchmarks run once each, as a
# smoke test; `make bench` measures).
test: setup
	cargo bench --bench micro -- --test
	cargo nextest run --no-fail-fast

# Microbenchmarks (criterion) and the loopback load benchmark (BENCHMARKS.md).
bench:
	cargo bench --bench micro

bench-load:
	benches/load.sh

# Coverage-guided fuzzing of the parsers, FUZZ_SECONDS per target (cargo-fuzz).
FUZZ_SECONDS ?= 600
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for t in normalize query signed_url jwt jwt_differential config kinds manifest; do \
		cargo fuzz run -s none -O $$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096 || exit 1; done

# Replays the committed corpora (fuzz/corpus/<target>) once through every
# target: what the fuzzing record in SECURITY.md grew, checked again.
fuzz-replay:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for t in normalize query signed_url jwt jwt_differential config kinds manifest; do \
		cargo fuzz run -s none -O $$t corpus/$$t -- -runs=0 -max_len=4096 || exit 1; done

setup:
	tests/setup.sh

# The release binary, exactly as the Dockerfile builds it (CI runs this
# target too, so a build the image would fail on fails CI first).
release:
	cargo build --release --locked

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf .venv tests/js/node_modules
