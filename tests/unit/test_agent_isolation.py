"""The provider agent is a plain HTTP client: loading it loads none of the server's packages."""

from __future__ import annotations

import subprocess
import sys

SERVER_PACKAGES = ("fastapi", "sqlalchemy", "uvicorn", "flow_memory.kit", "flow_memory.app")


def test_the_agent_imports_nothing_from_the_server() -> None:
    probe = (
        "import sys, flow_memory.agent, flow_memory.agent.daemon, flow_memory.agent.local_model\n"
        f"loaded = [m for m in sys.modules if m.startswith({SERVER_PACKAGES!r})]\n"
        "print(','.join(sorted(loaded)))\n"
        "assert 'flow_memory.agent.runtime' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
