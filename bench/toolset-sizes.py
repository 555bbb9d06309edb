#!/usr/bin/env python3
"""What each toolset costs in an image: run inside the image with the toolsets as JSON on stdin
(`dsvm env toolsets --output json`) and the toolset names as arguments, e.g.

  dsvm env toolsets --output json | docker run --rm -i --network none IMAGE python3 - core python ... < bench/toolset-sizes.py

(see bench/toolset-sizes.sh). Reads dpkg's status file: each package's Installed-Size and dependencies (the installed
alternative of `a | b`, virtual packages through Provides). For each toolset it prints its closure's size and its
marginal size: what only it needs (removing it alone from the spec would save that much)."""
import json, re, sys

status = open("/var/lib/dpkg/status").read().split("\n\n")
pkgs, provides = {}, {}
for block in status:
    f = {}
    key = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and key:
            f[key] += line
        elif ":" in line:
            key, _, value = line.partition(":")
            f[key] = value.strip()
    if "Package" not in f or not f.get("Status", "").endswith(" installed"):
        continue
    name = f["Package"]
    deps = []
    for field in ("Pre-Depends", "Depends"):
        for group in filter(None, (g.strip() for g in f.get(field, "").split(","))):
            deps.append([re.sub(r"[ (:].*", "", alt.strip()) for alt in group.split("|")])
    pkgs[name] = (int(f.get("Installed-Size", "0")) * 1024, deps)
    for p in filter(None, (x.strip() for x in f.get("Provides", "").split(","))):
        provides.setdefault(re.sub(r"[ (].*", "", p), []).append(name)

def resolve(name):
    if name in pkgs:
        return name
    return next(iter(provides.get(name, [])), None)

def closure(roots):
    seen, stack = set(), [r for r in map(resolve, roots) if r]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        for group in pkgs[n][1]:
            hit = next((r for r in map(resolve, group) if r), None)
            if hit and hit not in seen:
                stack.append(hit)
    return seen

catalog = {t["name"]: t["packages"] for t in json.load(sys.stdin)}
names = sys.argv[1:]
closures = {n: closure(catalog[n]) for n in names}
everything = set(pkgs)
size = lambda s: sum(pkgs[n][0] for n in s)
print("| toolset | closure (installed) | only this toolset needs |")
print("| --- | ---: | ---: |")
for n in names:
    others = set().union(*(closures[m] for m in names if m != n))
    only = closures[n] - others
    print("| %s | %.0f MiB (%d packages) | %.0f MiB (%d packages) |" % (n, size(closures[n]) / 2**20, len(closures[n]), size(only) / 2**20, len(only)))
rest = everything - set().union(*closures.values())
print("| base system and the spec's own packages | | %.0f MiB (%d packages) |" % (size(rest) / 2**20, len(rest)))
print("| all installed packages | %.0f MiB (%d packages) | |" % (size(everything) / 2**20, len(everything)))
