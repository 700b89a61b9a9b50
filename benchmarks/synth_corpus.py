"""Time the generation of the synthetic demo corpus (w2v2.data.synth).

Each size is a whole corpus with the default proportions of the splits (pretrain
600 : train_1h 60 : train_10min 10 : validation 15 : test_clean 15 : test_other 15
minutes), scaled to the requested total, written to a fresh temporary directory.

    python benchmarks/synth_corpus.py --minutes 10 60 --jobs 2
"""

import argparse
import dataclasses
import os
import tempfile
import time

from w2v2.data.synth import SPLITS, CorpusConfig, generate_corpus
from w2v2.data.text import load_sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0],
                        help="corpus sizes to time, in minutes of audio")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    default_minutes = sum(CorpusConfig().seconds(s) for s in SPLITS) / 60  # 715
    start = time.perf_counter()
    load_sentences()  # once per process (cached), not counted below
    print(f"jobs={args.jobs}  cpus={os.cpu_count()}  load average={os.getloadavg()[0]:.1f}  "
          f"sentence extraction (once per process)={time.perf_counter() - start:.1f} s")
    print("| corpus | audio (min) | utterances | wall (s) | x real time |")
    print("|---|---|---|---|---|")
    for minutes in args.minutes:
        config = CorpusConfig(seed=args.seed, scale=minutes / default_minutes)
        with tempfile.TemporaryDirectory(prefix="w2v2-synth-bench-") as out:
            start = time.perf_counter()
            summary = generate_corpus(out, **dataclasses.asdict(config), jobs=args.jobs)
            wall = time.perf_counter() - start
        count = sum(s["utterances"] for s in summary["splits"].values())
        audio = summary["seconds"]
        print(f"| {minutes:g} min | {audio / 60:.1f} | {count} | {wall:.1f} | {audio / wall:.0f}x |"
              f"  (load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
