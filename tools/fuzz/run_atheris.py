"""Coverage-guided fuzzing of one parser with atheris (libFuzzer).

    python tools/fuzz/run_atheris.py TARGET [-runs=10000] [libFuzzer flags ...]
    python tools/fuzz/run_atheris.py all [-runs=10000]      # every target, one process each

Targets are those of tools/fuzz/targets.py. The corpus starts from the valid seed and from
mutations of it (tools/fuzz/mutate.py); libFuzzer then mutates with coverage feedback over the
instrumented splat modules. Any exception other than SplatError is a crash: libFuzzer stops and
writes the input to crash-*. With ``all``, one line per target: "TARGET: N inputs, no crash"
(N from libFuzzer's "Done N runs") or the crash report.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def run_one(name: str, flags: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["splat"]):
        import splat.camera  # noqa: F401
        import splat.data.colmap  # noqa: F401
        import splat.data.loaders  # noqa: F401
        import splat.io.ply  # noqa: F401
        import splat.io.splat_format  # noqa: F401
        import splat.io.spz  # noqa: F401
        import splat.io.compressed_ply  # noqa: F401
        import splat.io.sog  # noqa: F401
        import splat.io.ksplat  # noqa: F401
    from mutate import KINDS, mutate
    from targets import TARGETS, seeds_cached

    from splat.errors import SplatError

    scratch = Path(tempfile.mkdtemp(prefix=f"splat-atheris-{name}-"))
    seed = seeds_cached(scratch)[name]
    corpus = scratch / "corpus"
    corpus.mkdir()
    (corpus / "seed").write_bytes(seed)
    rng = random.Random(0)
    for i in range(32):  # structured mutations give libFuzzer a wider start
        (corpus / f"m{i}").write_bytes(mutate(seed, lambda n: rng.randrange(max(n, 1)), KINDS[name]))
    target = TARGETS[name]

    def one_input(data: bytes) -> None:
        try:
            target(data, scratch)
        except SplatError:
            pass

    atheris.Setup([sys.argv[0], *flags, str(corpus)], one_input)
    atheris.Fuzz()  # exits the process when the runs are done


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    name, flags = sys.argv[1], sys.argv[2:] or ["-runs=10000"]
    if "-rss_limit_mb" not in " ".join(flags):
        flags.append("-rss_limit_mb=2048")  # a forged count must not blow up memory
    if name != "all":
        run_one(name, flags)
        return
    from targets import TARGETS

    failed = []
    for t in sorted(TARGETS):
        r = subprocess.run([sys.executable, __file__, t, *flags], capture_output=True, text=True,
                           env={**os.environ, "PYTHONWARNINGS": "ignore"})
        import re

        done = re.findall(r"Done (\d+) runs in (\d+) second", r.stderr)
        if r.returncode == 0 and done:
            print(f"{t}: {done[-1][0]} inputs in {done[-1][1]} s, no crash", flush=True)
        else:
            print(f"{t}: CRASH (exit {r.returncode})\n{r.stderr[-3000:]}", flush=True)
        if r.returncode:
            failed.append(t)
    if failed:
        raise SystemExit(f"crashes in: {', '.join(failed)}")


if __name__ == "__main__":
    main()
