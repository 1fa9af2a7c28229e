"""The fake OpenAI-compatible server now lives in `ember_compiler/testing/fake_server.py` (tests use it too).

    python bench/fake_server.py --port 0 --latency-ms 100 --rpm 6000   # same as:
    python -m ember_compiler.testing.fake_server --port 0 --latency-ms 100 --rpm 6000
"""

from ember_compiler.testing.fake_server import cli

if __name__ == "__main__":
    cli()
