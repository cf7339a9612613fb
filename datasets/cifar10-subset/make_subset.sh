#!/usr/bin/env bash
# Builds cifar10-subset.tar.gz next to this script: the first 500 training and 100 test images of
# every class (by file number) of the CIFAR-10 JPEG archive, in its layout
# (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg). The output is byte-for-byte reproducible
# (sorted members, fixed owners and times, gzip without a timestamp).
#
# Usage: datasets/cifar10-subset/make_subset.sh [SOURCE.tar.gz]
# SOURCE defaults to ../shared/data/cifar10/cifar10-jpg.tar.gz relative to the repository root.
# Needs bash and python3 (standard library only).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="${1:-$root/../shared/data/cifar10/cifar10-jpg.tar.gz}"
out="$here/cifar10-subset.tar.gz"

python3 - "$src" "$out" <<'PY'
import gzip, io, re, sys, tarfile

src, out = sys.argv[1], sys.argv[2]
per_class = {"train": 500, "test": 100}
member = re.compile(r"^(train|test)/([^/]+)/(\d+)\.jpg$")

# (split, class) -> [(number, name, bytes)]
found = {}
with tarfile.open(src, "r:gz") as tar:
    for m in tar:
        match = member.match(m.name)
        if m.isfile() and match:
            split, cls, number = match.group(1), match.group(2), int(match.group(3))
            found.setdefault((split, cls), []).append((number, m.name, tar.extractfile(m).read()))

entries = {}  # path -> bytes, or None for a directory
for (split, cls), images in found.items():
    images.sort()
    if len(images) < per_class[split]:
        sys.exit(f"{src}: {split}/{cls} has {len(images)} images, need {per_class[split]}")
    entries[split] = None
    entries[f"{split}/{cls}"] = None
    for _, name, data in images[: per_class[split]]:
        entries[name] = data

MTIME = 1553999700  # 2019-03-31, the date of the source files
with open(out, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
    with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(entries):
            data = entries[name]
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))

counts = {s: sum(1 for n, d in entries.items() if d is not None and n.startswith(s + "/")) for s in per_class}
classes = len({c for _, c in found})
print(f"{out}: {classes} classes, {counts['train']} train + {counts['test']} test images")
PY
ls -l "$out"
