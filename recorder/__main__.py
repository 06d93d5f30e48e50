"""``python -m recorder record|replay ...``: the same commands as ``smartcity record|replay``,
usable before (and independently of) the ``smartcity`` entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from recorder.commands import add_record_arguments, add_replay_arguments, record_main, replay_main
from smartcity.errors import ContractError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recorder")
    sub = parser.add_subparsers(dest="command", required=True)
    add_record_arguments(sub.add_parser("record", help="record messages from the broker"))
    add_replay_arguments(sub.add_parser("replay", help="replay a recording"))
    args = parser.parse_args(argv)
    try:
        return record_main(args) if args.command == "record" else replay_main(args)
    except (ContractError, ValidationError) as e:
        print(f"{args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
