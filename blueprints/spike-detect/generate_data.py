"""Write a synthetic extracellular recording: int16 samples interleaved by channel.

    python generate_data.py --out rec.bin [--truth truth.csv] [--channels 4] [--seconds 10]

A few neurons with distinct spike shapes fire as Poisson processes; each is seen on a couple
of neighbouring channels, on top of pink-ish background noise and a slow LFP-like drift.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def spike_shape(rate: int, width_ms: float, trough: float, peak: float) -> np.ndarray:
    t = np.arange(int(rate * 2e-3)) / rate * 1e3 - 0.5  # ms around the trough
    return trough * np.exp(-((t / (width_ms * 0.25)) ** 2)) + peak * np.exp(
        -(((t - width_ms * 0.6) / (width_ms * 0.5)) ** 2)
    )


def generate(
    channels: int, seconds: float, rate: int, seed: int
) -> tuple[np.ndarray, list[tuple[float, int, int]]]:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    noise = rng.normal(0, 12, size=(n, channels))
    drift = 40 * np.sin(2 * np.pi * 2.0 * np.arange(n) / rate)[:, None]
    signal = noise + drift
    neurons = [  # (firing rate Hz, main channel, trough uV, peak uV, width ms)
        (8.0, 0, -180.0, 40.0, 0.6),
        (5.0, min(1, channels - 1), -140.0, 70.0, 1.0),
        (12.0, min(2, channels - 1), -220.0, 30.0, 0.4),
    ]
    truth: list[tuple[float, int, int]] = []
    for unit, (hz, channel, trough, peak, width) in enumerate(neurons):
        shape = spike_shape(rate, width, trough, peak)
        times = np.sort(rng.uniform(0.01, seconds - 0.01, rng.poisson(hz * seconds)))
        times = times[np.insert(np.diff(times) > 2e-3, 0, True)]  # refractory period
        for t in times:
            start = int(t * rate)
            for ch, gain in ((channel, 1.0), (min(channel + 1, channels - 1), 0.4)):
                signal[start : start + len(shape), ch] += gain * shape[: n - start]
            truth.append((float(t), channel, unit))
    return np.clip(signal, -32768, 32767).astype("<i2"), sorted(truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--truth", type=Path)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data, truth = generate(args.channels, args.seconds, args.rate, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data.tofile(args.out)
    if args.truth:
        lines = ["time_s,channel,unit"] + [f"{t:.6f},{c},{u}" for t, c, u in truth]
        args.truth.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {args.channels} ch x {args.seconds:g} s, {len(truth)} spikes")


if __name__ == "__main__":
    main()
