"""Spike detection: band-pass, robust threshold, waveform clustering, a figure.

Runs under the ncaas container contract: reads $NCAAS_DATA (raw little-endian int16 samples
interleaved by channel, as Intan/SpikeGLX .bin files) and $NCAAS_CONFIG (flat `key: value`),
writes spikes.csv, summary.json and spikes.png into $NCAAS_OUTPUT. Exit 2 on bad input.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

DEFAULTS: dict[str, float] = {
    "channels": 4,
    "sample_rate": 30000,
    "freq_low": 300,
    "freq_high": 6000,
    "threshold_sd": 5,
    "dead_time_ms": 1.0,
    "waveform_ms": 2.0,
    "n_clusters": 3,
    "seed": 0,
}
CHUNK = 1 << 20  # samples per channel processed at once: memory stays bounded
MARGIN = 4096  # overlap so the filter has no edge effects at chunk borders


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def read_config(path: str) -> dict[str, float]:
    params = dict(DEFAULTS)
    if not path:
        return params
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or key not in DEFAULTS:
            fail(f"config line {number}: {raw.strip()!r}: expected one of {', '.join(DEFAULTS)}")
        try:
            params[key] = float(value)
        except ValueError:
            fail(f"config line {number}: {key} must be a number, got {value.strip()!r}")
    if params["channels"] < 1 or params["sample_rate"] <= 0:
        fail("config: channels and sample_rate must be positive")
    if not 0 < params["freq_low"] < params["freq_high"] < params["sample_rate"] / 2:
        fail("config: need 0 < freq_low < freq_high < sample_rate / 2")
    return params


def bandpass(block: np.ndarray, rate: float, low: float, high: float) -> np.ndarray:
    """Zero-phase FFT band-pass with smooth (raised-cosine) band edges, per channel."""
    spectrum = np.fft.rfft(block, axis=0)
    freqs = np.fft.rfftfreq(block.shape[0], 1 / rate)
    gain = np.clip((freqs - low * 0.5) / (low * 0.5), 0, 1) * np.clip(
        (high * 1.2 - freqs) / (high * 0.2), 0, 1
    )
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.fft.irfft(spectrum * gain[:, None], n=block.shape[0], axis=0)


def detect(
    raw: np.ndarray, p: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spike sample indices, channels, amplitudes and waveforms (negative threshold crossings)."""
    n, channels = raw.shape
    rate = p["sample_rate"]
    half = int(p["waveform_ms"] * 1e-3 * rate / 2)
    dead = max(1, int(p["dead_time_ms"] * 1e-3 * rate))
    first = bandpass(raw[: min(n, CHUNK)].astype(np.float64), rate, p["freq_low"], p["freq_high"])
    noise = np.median(np.abs(first), axis=0) / 0.6745  # robust SD per channel (MAD)
    threshold = -p["threshold_sd"] * np.maximum(noise, 1e-9)
    times, chans, amps, waves = [], [], [], []
    for start in range(0, n, CHUNK):
        lo, hi = max(0, start - MARGIN), min(n, start + CHUNK + MARGIN)
        filtered = bandpass(raw[lo:hi].astype(np.float64), rate, p["freq_low"], p["freq_high"])
        for ch in range(channels):
            x = filtered[:, ch]
            below = x < threshold[ch]
            onsets = np.flatnonzero(below[1:] & ~below[:-1]) + 1
            last = -dead
            for onset in onsets:
                peak = onset + int(np.argmin(x[onset : onset + dead]))
                absolute = lo + peak
                if not start <= absolute < start + CHUNK or absolute - last < dead:
                    continue
                if peak - half < 0 or peak + half > len(x):
                    continue
                last = absolute
                times.append(absolute)
                chans.append(ch)
                amps.append(x[peak])
                waves.append(x[peak - half : peak + half])
        print(
            f"filtered {min(start + CHUNK, n) / rate:.1f} of {n / rate:.1f} s; "
            f"{len(times)} threshold crossings so far",
            flush=True,
        )
    if not times:
        empty = np.zeros(0)
        return empty.astype(int), empty.astype(int), empty, np.zeros((0, 2 * half))
    keep = merge_across_channels(np.array(times), np.array(amps), dead)
    return np.array(times)[keep], np.array(chans)[keep], np.array(amps)[keep], np.array(waves)[keep]


def merge_across_channels(times: np.ndarray, amps: np.ndarray, dead: int) -> np.ndarray:
    """One spike seen on neighbouring channels is one event: keep its largest detection."""
    order = np.argsort(times, kind="stable")
    keep: list[int] = []
    for i in order:
        if keep and times[i] - times[keep[-1]] < dead:
            if amps[i] < amps[keep[-1]]:
                keep[-1] = int(i)
            continue
        keep.append(int(i))
    return np.array(keep, dtype=int)


def kmeans(features: np.ndarray, k: int, seed: int, iterations: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = max(1, min(k, len(features)))
    centres = features[rng.choice(len(features), k, replace=False)]
    labels = np.zeros(len(features), dtype=int)
    for _ in range(iterations):
        distances = ((features[:, None, :] - centres[None]) ** 2).sum(axis=2)
        labels = distances.argmin(axis=1)
        moved = np.array(
            [
                features[labels == j].mean(axis=0) if np.any(labels == j) else centres[j]
                for j in range(k)
            ]
        )
        if np.allclose(moved, centres):
            break
        centres = moved
    return labels


def cluster(waves: np.ndarray, k: int, seed: int) -> np.ndarray:
    if len(waves) == 0:
        return np.zeros(0, dtype=int)
    centred = waves - waves.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return kmeans(centred @ components[:3].T, k, seed)


def figure(
    raw: np.ndarray,
    times: np.ndarray,
    chans: np.ndarray,
    waves: np.ndarray,
    labels: np.ndarray,
    p: dict[str, float],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate = p["sample_rate"]
    window = min(len(raw), int(0.5 * rate))
    snippet = bandpass(raw[:window].astype(np.float64), rate, p["freq_low"], p["freq_high"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8))
    offset = 1.1 * float(np.abs(snippet).max()) if snippet.size else 1.0
    for ch in range(raw.shape[1]):
        t = np.arange(window) / rate
        top.plot(t, snippet[:, ch] - ch * offset, lw=0.5, color="0.3")
        mine = times[(chans == ch) & (times < window)]
        top.plot(mine / rate, snippet[mine, ch] - ch * offset, "rv", ms=4)
    top.set(
        title="Filtered recording (first 0.5 s), detected spikes in red",
        xlabel="time (s)",
        yticks=[],
    )
    axis = (np.arange(waves.shape[1]) - waves.shape[1] / 2) / rate * 1e3 if len(waves) else []
    for label in np.unique(labels):
        members = waves[labels == label]
        bottom.plot(axis, members.mean(axis=0), lw=2, label=f"cluster {label} (n={len(members)})")
    bottom.set(title="Mean waveform per cluster", xlabel="time (ms)", ylabel="amplitude (uV)")
    if len(labels):
        bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    data = Path(os.environ.get("NCAAS_DATA", ""))
    out = Path(os.environ.get("NCAAS_OUTPUT", "."))
    if not data.is_file():
        fail(f"dataset {str(data)!r} not found (is NCAAS_DATA set?)")
    p = read_config(os.environ.get("NCAAS_CONFIG", ""))
    channels = int(p["channels"])
    size = data.stat().st_size
    if size == 0 or size % (2 * channels):
        fail(f"{data.name}: {size} bytes is not a whole number of {channels}-channel int16 frames")
    raw = np.memmap(data, dtype="<i2", mode="r").reshape(-1, channels)
    print(f"{data.name}: {channels} channels, {len(raw) / p['sample_rate']:.1f} s", flush=True)
    times, chans, amps, waves = detect(raw, p)
    labels = cluster(waves, int(p["n_clusters"]), int(p["seed"]))
    rate = p["sample_rate"]
    with (out / "spikes.csv").open("w") as f:
        f.write("time_s,channel,amplitude_uv,cluster\n")
        for t, c, a, k in zip(times, chans, amps, labels, strict=True):
            f.write(f"{t / rate:.6f},{c},{a:.1f},{k}\n")
    duration = len(raw) / rate
    summary = {
        "dataset": data.name,
        "duration_s": duration,
        "spikes": len(times),
        "per_channel": {str(c): int((chans == c).sum()) for c in range(channels)},
        "per_cluster": {str(k): int((labels == k).sum()) for k in np.unique(labels)},
        "firing_rate_hz": {
            str(k): round(float((labels == k).sum()) / duration, 3) for k in np.unique(labels)
        },
        "parameters": p,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    figure(raw, times, chans, waves, labels, p, out / "spikes.png")
    print(
        f"done: {len(times)} spikes in {len(np.unique(labels))} clusters; "
        "wrote spikes.csv, summary.json, spikes.png",
        flush=True,
    )


if __name__ == "__main__":
    main()
