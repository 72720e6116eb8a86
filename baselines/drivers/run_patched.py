"""Run an upstream Python script as ``__main__`` with small source patches applied in memory.

Usage (with the method's own interpreter)::

    python run_patched.py CONFIG.json

CONFIG.json (written by the refvps adapter)::

    {"script": "/abs/path/inference_ytvos.py",      # the upstream entry point
     "argv": ["--with_box_refine", ...],             # its command-line arguments
     "sys_path": ["/abs/path/checkout"],             # put first on sys.path (the script's folder)
     "patches": [{"name": "...", "pattern": "<regex, MULTILINE>", "replacement": "...",
                  "required": false, "why": "..."}]}

The checkout is never written to: the script's text is read, each pattern is replaced, and the
result is compiled under the script's own file name, so tracebacks point at the right file. A
replacement never changes the number of lines, so line numbers in tracebacks stay true.

This file runs under the method's interpreter (Python 3.7 for MUTR), so it uses only the standard
library and no syntax newer than Python 3.7.
"""

import builtins
import json
import os
import re
import sys
import types

TAG = "[refvps-driver]"


def log(message):
    sys.stderr.write("%s %s\n" % (TAG, message))
    sys.stderr.flush()


def apply_patches(source, patches):
    for patch in patches:
        pattern = re.compile(patch["pattern"], re.MULTILINE)
        replacement = patch["replacement"]
        matches = list(pattern.finditer(source))
        if not matches:
            if patch.get("required"):
                log(
                    "patch '%s' did not match the script: the upstream code changed; "
                    "update the refvps adapter (%s)" % (patch["name"], patch.get("why", ""))
                )
                sys.exit(3)
            log("patch '%s': nothing to patch (not in this version of the script)" % patch["name"])
            continue
        for match in matches:
            new_text = match.expand(replacement)
            if new_text.count("\n") != match.group(0).count("\n"):
                log("patch '%s' would change the line count; refusing" % patch["name"])
                sys.exit(3)
        lines = [source.count("\n", 0, m.start()) + 1 for m in matches]
        source = pattern.sub(replacement, source)
        log(
            "patch '%s' applied at line %s: %s"
            % (patch["name"], ", ".join(str(n) for n in lines), patch.get("why", ""))
        )
    return source


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: python run_patched.py CONFIG.json\n")
        return 2
    with open(argv[1], "r", encoding="utf-8") as handle:
        config = json.load(handle)
    script = os.path.abspath(config["script"])
    with open(script, "r", encoding="utf-8") as handle:
        source = handle.read()
    source = apply_patches(source, config.get("patches", []))

    # Look like `python script.py args`: the script's folder first on sys.path, argv[0] the script.
    sys.path[0:1] = list(config.get("sys_path", [])) or [os.path.dirname(script)]
    sys.argv = [script] + list(config.get("argv", []))
    module = types.ModuleType("__main__")
    module.__file__ = script
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    log("running %s %s" % (script, " ".join(sys.argv[1:])))
    code = compile(source, script, "exec")
    exec(code, module.__dict__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
