"""No secret is committed: every password, token or secret set in a tracked config, env or
shell file is empty (generated on the first start) or a reference to the environment or to a
file (`${VAR}`, `$__file{...}`, `$(cat ...)`)."""

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = re.compile(r"(\.ya?ml|\.sh|\.ini|\.example|Dockerfile|\.env)$")
# NAME=value (env and shell files) or name: value (YAML), for secret-looking names.
SETTING = re.compile(r"""^\s*(?:export\s+|-\s+)?["']?([A-Za-z_]*(?:password|token|secret))["']?"""
                     r"""\s*[=:]\s*(.*?)\s*$""", re.IGNORECASE)
REFERENCE = re.compile(r"""^["']?(\$[({]?[A-Za-z_].*|)["']?$""")


def config_files():
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    return [REPO / name for name in names if CONFIG_FILES.search(name)]


def test_no_secret_values_in_the_repository():
    files = config_files()
    assert any(path.name == "env.example" for path in files)
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            match = SETTING.match(line)
            if match and not line.lstrip().startswith("#"):
                value = match.group(2).split(" #")[0]
                if not REFERENCE.match(value):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "secret values in the repository:\n" + "\n".join(found)


def test_the_check_itself_finds_a_secret(tmp_path):
    line = "POSTGRES_PASSWORD=hunter2hunter2"
    match = SETTING.match(line)
    assert match and not REFERENCE.match(match.group(2))
