"""python -m bankops.slo [--check]: write slo-rules.yml from slos.yml (or only compare)."""

import argparse
import sys

from bankops.slo import rules, spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bankops.slo", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when slo-rules.yml is not what slos.yml generates")
    args = parser.parse_args(argv)
    generated = rules.render(spec.load())
    if args.check:
        if rules.RULES.read_text(encoding="utf-8") != generated:
            print(f"{rules.RULES.name} is stale: run python -m bankops.slo", file=sys.stderr)
            return 1
        return 0
    rules.RULES.write_text(generated, encoding="utf-8")
    print(f"wrote {rules.RULES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
