#!/usr/bin/env python3
"""Time OpenCV on the matcher corpus, the way the Tails suite matches: both
images to grayscale, matchTemplate with TM_CCOEFF_NORMED, minMaxLoc.

    scripts/opencv_match.py benches/corpus/pairs.toml [--repeat N]

Prints one JSON object per pair: name, x, y, score, median_ms. Images are
decoded once; each repetition converts and searches from scratch (cold),
like `tailor match --bench`. A sidecar region limits the search as in Tailor.
"""
import argparse
import json
import os
import statistics
import time
import tomllib

import cv2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pairs")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    base = os.path.dirname(os.path.abspath(args.pairs))
    with open(args.pairs, "rb") as f:
        pairs = tomllib.load(f)["pair"]
    for p in pairs:
        screen = cv2.imread(os.path.join(base, p["screen"]), cv2.IMREAD_COLOR)
        ref_path = os.path.join(base, p["reference"])
        ref = cv2.imread(ref_path, cv2.IMREAD_COLOR)
        ox = oy = 0
        sidecar = os.path.splitext(ref_path)[0] + ".toml"
        if os.path.exists(sidecar):
            with open(sidecar, "rb") as f:
                region = tomllib.load(f).get("region")
            if region:
                ox, oy, w, h = region
                screen = screen[oy:oy + h, ox:ox + w]
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            gray = cv2.cvtColor(screen, cv2.COLOR_BGR2GRAY)
            tgray = cv2.cvtColor(ref, cv2.COLOR_BGR2GRAY)
            res = cv2.matchTemplate(gray, tgray, cv2.TM_CCOEFF_NORMED)
            _, score, _, loc = cv2.minMaxLoc(res)
            times.append(time.perf_counter() - start)
        print(json.dumps({
            "name": p["name"],
            "x": loc[0] + ox,
            "y": loc[1] + oy,
            "score": score,
            "median_ms": statistics.median(times) * 1e3,
            "threads": cv2.getNumThreads(),
            "version": cv2.__version__,
        }), flush=True)


if __name__ == "__main__":
    main()
