"""The cached .deb files of a locked package list, for the install benchmarks.

Usage: locked-debs.py WORK DEBS. Reads WORK/toolsets.txt (NAME=VERSION lines of an image's lock) and writes
WORK/files.txt: /debs/NAME_VERSION_ARCH.deb for each package found in DEBS (the build package cache's .deb
folder). Packages the base image already has are not in the cache and are skipped.
"""
import os, sys, urllib.parse
work, debs = sys.argv[1], sys.argv[2]
index = {}
for f in os.listdir(debs):
    if f.endswith(".deb") and f.count("_") == 2:
        name, version, _ = f[:-4].split("_")
        index[(name, urllib.parse.unquote(version))] = f
found = []
for line in open(os.path.join(work, "toolsets.txt")):
    if "=" in line:
        name, version = line.strip().split("=", 1)
        name = name.split(":")[0]
        # Pool file names carry no epoch (1:2.1.5-4 is NAME_2.1.5-4_ARCH.deb).
        f = index.get((name, version)) or index.get((name, version.split(":", 1)[-1]))
        if f:
            found.append("/debs/" + f)
open(os.path.join(work, "files.txt"), "w").write("\n".join(found) + "\n")
print(f"{len(found)} packages from the cache", file=sys.stderr)
