"""Child entry point of ``run_isolated``: ``python -m m3ddm.benchmarks.isolated REQUEST.json RESULT.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from m3ddm.benchmarks.measure import resolve_task
from m3ddm.errors import UserError


def main(argv: list[str]) -> int:
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    try:
        result = resolve_task(request["task"])(**request["params"])
    except UserError as exc:
        result_path.write_text(json.dumps({"user_error": str(exc)}))
        return 2
    result_path.write_text(json.dumps({"result": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
