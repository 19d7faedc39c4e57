"""Proof that a refactor left detection unchanged: ``deepmir predict`` (the shipped default model) on fixed
synthetic subjects gives byte-identical label maps and lesion tables.

    python benchmarks/check_identical_labels.py --record   # write the reference (on the code before a change)
    python benchmarks/check_identical_labels.py            # compare with it; exit 1 on any difference

The subjects are ``deepmir synth`` subjects with fixed seeds: the demo's (seed 2026), the predict benchmark's
(seed 4242) and one more (seed 7). Each is predicted through the command line, in this process, and the SHA-256
of every written label map and lesion table is recorded in (or compared with) ``identical_labels.json``.
"""

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from napari_deepmir.cli import main as deepmir

REFERENCE = Path(__file__).with_name("identical_labels.json")
#: Synthetic subjects by seed: the demo's, bench_predict.py's, one more.
SEEDS = (2026, 4242, 7)
#: Output files compared (the label map and the lesion table of ``deepmir predict``).
COMPARED = ("*_dseg.nii.gz", "*_lesions.tsv")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def predict_hashes(work: Path, device: str, subjects: Path | None = None) -> dict[str, str]:
    """{seed/file name: SHA-256} of the label maps and lesion tables predict writes for each subject; the
    subjects are made in ``subjects`` (default: in ``work``), or taken from there when already made."""
    hashes = {}
    for seed in SEEDS:
        data, out = (subjects or work) / f"seed-{seed}", work / f"pred-{seed}"
        made = data.is_dir() and any(data.rglob("*T2starw.nii.gz"))
        if not made and deepmir(["synth", str(data), "--subjects", "1", "--seed", str(seed)]) != 0:
            raise SystemExit(f"deepmir synth failed for seed {seed}")
        subject = next(p for p in sorted(data.glob("sub-*")) if p.is_dir())
        anat = subject / "anat" if (subject / "anat").is_dir() else subject
        if deepmir(["predict", "--subject", str(anat), "--out", str(out), "--device", device]) != 0:
            raise SystemExit(f"deepmir predict failed for seed {seed}")
        for pattern in COMPARED:
            for path in sorted(out.rglob(pattern)):
                hashes[f"{seed}/{path.name}"] = sha256(path)
    return hashes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help=f"write the reference ({REFERENCE.name})")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--subjects", type=Path, default=None, help="keep (or reuse) the synthetic subjects here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        hashes = predict_hashes(Path(tmp), args.device, args.subjects)
    if args.record:
        args.reference.write_text(json.dumps(hashes, indent=2) + "\n", encoding="utf-8")
        print(f"{len(hashes)} hashes -> {args.reference}")
        return 0
    reference = json.loads(args.reference.read_text(encoding="utf-8"))
    differ = sorted(name for name in reference.keys() | hashes.keys() if reference.get(name) != hashes.get(name))
    for name in differ:
        print(f"DIFFERS {name}: reference {reference.get(name)}, now {hashes.get(name)}")
    print(f"{len(reference) - len(differ)}/{len(reference)} files identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
