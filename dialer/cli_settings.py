"""``dialer settings``: the effective settings (environment, ``.env``, defaults), secrets masked.

One ``DIALER_NAME=value`` line per setting (lists and objects as JSON), in the form the environment takes,
so a line can be copied into a ``.env`` file once its ``****`` is filled in; an optional setting that is not
set is shown as a comment. ``--json`` prints one object.
Variables with the ``DIALER_`` prefix that name no setting are listed on stderr: a typo is otherwise ignored.
"""

from __future__ import annotations

import argparse
import json
import sys

from settings import get_settings, masked, unknown_variables


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dialer settings", description="print the effective settings")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args(argv)
    shown = masked(get_settings())
    if args.json:
        print(json.dumps(shown, indent=2))
    else:
        for name, value in shown.items():
            if value is None:
                print(f"# {name} is not set")
            else:
                print(f"{name}={value if isinstance(value, str) else json.dumps(value)}")
    for name in unknown_variables():
        print(f"dialer settings: {name} is not a setting (ignored)", file=sys.stderr)
    return 0
