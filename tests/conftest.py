import os

import pytest
import torch

# Tests share a 2-core machine; one thread each keeps them predictable.
torch.set_num_threads(int(os.environ.get("TRILEMMA_TEST_THREADS", "1")))


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from trilemma.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
