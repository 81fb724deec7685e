# tollgate — the two commands a newcomer needs are `make demo` and `make test`.
.PHONY: demo test setup lint release bench bench-load fuzz clean

# Run the self-contained demo (prints URLs to try).
demo:
	cargo run --release -- demo

# Install the test dependencies (nginx, promtool, Python and npm packages)
# and run the whole test suite.
test: setup
	cargo nextest run --no-fail-fast

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
