"""Spike detection: band-pass, robust threshold, waveform clustering, a figure.

Runs under the ncaas container contract:
  NCAAS_DATA    the recording: raw little-endian int16 samples interleaved by channel
                (frame after frame, as Intan/SpikeGLX/Open Ephys .bin/.dat files)
  NCAAS_CONFIG  flat `key: value` settings (see DEFAULTS); empty means the defaults
  NCAAS_OUTPUT  where spikes.csv, summary.json and spikes.png are written
Bad input (missing file, a size that is not whole frames, a bad setting): one line on stderr,
exit code 2. Only numpy and matplotlib are needed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np

# Every setting, its default, and whether it must be a whole number.
DEFAULTS: dict[str, float] = {
    "channels": 4,  # channels interleaved in the file
    "sample_rate": 30000,  # Hz
    "uv_per_bit": 1.0,  # int16 count -> microvolts (Intan RHD: 0.195)
    "freq_low": 300,  # band-pass, Hz
    "freq_high": 6000,
    "threshold_sd": 5,  # threshold: this many robust noise SDs below zero
    "dead_time_ms": 1.0,  # refractory: one spike per channel per dead time
    "waveform_ms": 2.0,  # waveform window, centred on the trough
    "n_clusters": 3,  # k-means clusters
    "seed": 0,  # k-means seed: the same input gives the same clusters
}
INTEGERS = {"channels", "n_clusters", "seed"}
VALUES_PER_CHUNK = 1 << 22  # samples x channels filtered at once: ~32 MB, whatever the length
MAX_TRACES = 8  # channels drawn in the figure (the busiest ones)
MARGIN = 4096  # samples of overlap so chunk edges do not show filter artefacts


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def log(message: str) -> None:
    print(message, flush=True)  # the platform streams stdout to the user live


def parse_config(text: str, source: str) -> dict[str, float]:
    """Flat `key: value` lines (a YAML subset); `#` starts a comment; unknown keys are errors."""
    params = dict(DEFAULTS)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line == "---":
            continue
        key, sep, value = (part.strip() for part in line.partition(":"))
        if not sep or key not in DEFAULTS:
            fail(
                f"{source} line {number}: {raw.strip()!r}: expected `key: value` with key one of "
                f"{', '.join(DEFAULTS)}"
            )
        value = value.strip("'\"")
        try:
            number_value = float(value)
        except ValueError:
            fail(f"{source} line {number}: {key} must be a number, got {value!r}")
        if key in INTEGERS and not number_value.is_integer():
            fail(f"{source} line {number}: {key} must be a whole number, got {value!r}")
        params[key] = number_value
    check(params, source)
    return params


def check(p: dict[str, float], source: str) -> None:
    if p["channels"] < 1 or p["sample_rate"] <= 0 or p["uv_per_bit"] <= 0:
        fail(f"{source}: channels, sample_rate and uv_per_bit must be positive")
    if not 0 < p["freq_low"] < p["freq_high"] < p["sample_rate"] / 2:
        fail(
            f"{source}: need 0 < freq_low < freq_high < sample_rate / 2 "
            f"(got {p['freq_low']:g}, {p['freq_high']:g}, {p['sample_rate']:g})"
        )
    if p["threshold_sd"] <= 0 or p["dead_time_ms"] <= 0 or p["waveform_ms"] <= 0:
        fail(f"{source}: threshold_sd, dead_time_ms and waveform_ms must be positive")
    if p["n_clusters"] < 1:
        fail(f"{source}: n_clusters must be at least 1")


def read_config(path: str) -> dict[str, float]:
    if not path:
        log("no config given: using the defaults")
        return dict(DEFAULTS)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the config {path!r}: {exc}")
    return parse_config(text, Path(path).name)


def open_recording(path: Path, channels: int) -> np.ndarray:
    """The recording as a (samples, channels) int16 memmap: nothing is loaded yet."""
    if not path.is_file():
        fail(f"dataset {str(path)!r} not found (is NCAAS_DATA set?)")
    size = path.stat().st_size
    if size == 0 or size % (2 * channels):
        fail(
            f"{path.name}: {size} bytes is not a whole number of {channels}-channel int16 "
            "frames (check `channels` in the config)"
        )
    return np.memmap(path, dtype="<i2", mode="r").reshape(-1, channels)


def bandpass(block: np.ndarray, rate: float, low: float, high: float) -> np.ndarray:
    """Zero-phase FFT band-pass per channel, with raised-cosine band edges (no ringing)."""
    block = block - block.mean(axis=0)
    freqs = np.fft.rfftfreq(block.shape[0], 1 / rate)
    rise = np.clip((freqs - low / 2) / (low / 2), 0, 1)  # 0 at low/2, 1 at low
    fall = np.clip((high * 1.2 - freqs) / (high * 0.2), 0, 1)  # 1 at high, 0 at 1.2 high
    gain = 0.5 - 0.5 * np.cos(np.pi * rise * fall)
    spectrum = np.fft.rfft(block, axis=0) * gain[:, None]
    return np.fft.irfft(spectrum, n=block.shape[0], axis=0)


def filtered_chunks(
    raw: np.ndarray, p: dict[str, float]
) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """Yield (offset of the block, first owned sample, end of owned samples, filtered µV block)."""
    n, channels = raw.shape
    chunk = max(1 << 16, VALUES_PER_CHUNK // channels)
    for start in range(0, n, chunk):
        lo, hi = max(0, start - MARGIN), min(n, start + chunk + MARGIN)
        block = raw[lo:hi].astype(np.float32) * np.float32(p["uv_per_bit"])
        yield (
            lo,
            start,
            min(n, start + chunk),
            bandpass(block, p["sample_rate"], p["freq_low"], p["freq_high"]),
        )


def noise_levels(raw: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """Robust noise SD per channel, median(|x|) / 0.6745, from (up to) the first chunk."""
    _, _, _, first = next(filtered_chunks(raw, p))
    return np.asarray(np.maximum(np.median(np.abs(first), axis=0) / 0.6745, 1e-6))


def crossings(x: np.ndarray, threshold: float, dead: int) -> np.ndarray:
    """Trough sample of each negative threshold crossing, at most one per dead time."""
    below = x < threshold
    onsets = np.flatnonzero(below[1:] & ~below[:-1]) + 1
    troughs: list[int] = []
    for onset in onsets:
        if troughs and onset - troughs[-1] < dead:
            continue
        troughs.append(int(onset) + int(np.argmin(x[onset : onset + dead])))
    return np.array(troughs, dtype=np.int64)


def detect(
    raw: np.ndarray, p: dict[str, float], noise: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spike samples, channels, amplitudes, trough-channel waveforms and footprints.

    The footprint is the filtered value on every channel at the trough: where the neuron is.
    """
    n, channels = raw.shape
    rate = p["sample_rate"]
    half = max(1, round(p["waveform_ms"] * 1e-3 * rate / 2))
    dead = max(1, round(p["dead_time_ms"] * 1e-3 * rate))
    thresholds = -p["threshold_sd"] * noise
    times, chans, amps, waves, prints = [], [], [], [], []
    for lo, first, end, x in filtered_chunks(raw, p):
        for ch in range(channels):
            for peak in crossings(x[:, ch], thresholds[ch], dead):
                at = lo + peak
                if not first <= at < end or peak < half or peak + half > len(x):
                    continue
                times.append(at)
                chans.append(ch)
                amps.append(float(x[peak, ch]))
                waves.append(x[peak - half : peak + half, ch].copy())  # no view: frees x
                prints.append(x[peak].copy())
        log(f"filtered {end / rate:.1f} of {n / rate:.1f} s: {len(times)} threshold crossings")
    if not times:
        return (
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros((0, 2 * half)),
            np.zeros((0, channels)),
        )
    keep = merge_across_channels(np.array(times), np.array(amps), dead)
    return (
        np.array(times)[keep],
        np.array(chans)[keep],
        np.array(amps)[keep],
        np.array(waves)[keep],
        np.array(prints)[keep],
    )


def merge_across_channels(times: np.ndarray, amps: np.ndarray, dead: int) -> np.ndarray:
    """One spike seen on neighbouring channels is one event: keep its largest detection."""
    keep: list[int] = []
    for i in np.argsort(times, kind="stable"):
        if keep and times[i] - times[keep[-1]] < dead:
            if amps[i] < amps[keep[-1]]:
                keep[-1] = int(i)
            continue
        keep.append(int(i))
    return np.array(keep, dtype=np.int64)


def pca(features: np.ndarray, dims: int) -> np.ndarray:
    centred = features - features.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return np.asarray(centred @ components[:dims].T)


def kmeans(x: np.ndarray, k: int, seed: int, restarts: int = 10, steps: int = 100) -> np.ndarray:
    """k-means with k-means++ starts; the best of `restarts` runs. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    k = max(1, min(k, len(x)))
    best, best_cost = np.zeros(len(x), dtype=np.int64), np.inf
    for _ in range(restarts):
        centres = x[[rng.integers(len(x))]]
        while len(centres) < k:  # k-means++: far points are likelier next centres
            d2 = ((x[:, None] - centres[None]) ** 2).sum(axis=2).min(axis=1)
            pick = rng.choice(len(x), p=d2 / d2.sum()) if d2.sum() > 0 else rng.integers(len(x))
            centres = np.vstack([centres, x[pick]])
        for _ in range(steps):
            labels = ((x[:, None] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
            moved = np.array(
                [
                    x[labels == j].mean(axis=0) if np.any(labels == j) else centres[j]
                    for j in range(k)
                ]
            )
            if np.allclose(moved, centres):
                break
            centres = moved
        cost = float(((x - centres[labels]) ** 2).sum())
        if cost < best_cost:
            best, best_cost = labels, cost
    return relabel_by_size(best)


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster 0 is the largest, so labels do not depend on k-means' arbitrary order."""
    order = np.argsort(-np.bincount(labels), kind="stable")
    return np.asarray(np.argsort(order)[labels])


def cluster(
    waves: np.ndarray, prints: np.ndarray, k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and 2-D PCA scores; features: the trough waveform and the channel footprint."""
    if len(waves) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2))
    features = pca(np.hstack([waves, prints]), 3)
    return kmeans(features, k, seed), features[:, :2]


def busiest_channels(chans: np.ndarray, channels: int, most: int) -> list[int]:
    """The channels to draw: all of them, or the `most` with the most spikes."""
    counts = np.bincount(chans, minlength=channels)
    return sorted(int(c) for c in np.argsort(-counts, kind="stable")[:most])


def figure(
    raw: np.ndarray,
    spikes: dict[str, np.ndarray],
    scores: np.ndarray,
    p: dict[str, float],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate = p["sample_rate"]
    window = min(len(raw), int(0.25 * rate))
    t = np.arange(window) / rate
    snippet = raw[:window].astype(np.float64) * p["uv_per_bit"]
    clean = bandpass(snippet, rate, p["freq_low"], p["freq_high"])
    times, chans = spikes["times"], spikes["chans"]
    waves, labels = spikes["waves"], spikes["labels"]
    colours = plt.get_cmap("tab10")
    fig = plt.figure(figsize=(12, 9))
    grid = fig.add_gridspec(3, 2, height_ratios=[1, 1, 1.1])
    top, middle = fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, :])
    gap = 1.2 * float(np.abs(clean).max() or 1.0)
    shown = busiest_channels(chans, raw.shape[1], MAX_TRACES)
    for row, ch in enumerate(shown):
        top.plot(t, snippet[:, ch] - snippet[:, ch].mean() - row * gap, lw=0.5, color="0.4")
        middle.plot(t, clean[:, ch] - row * gap, lw=0.5, color="0.3")
        mine = (chans == ch) & (times < window)
        # On the trace's own baseline: at the spike's trough, a large spike's marker would
        # sit most of a gap below, on the next channel's line.
        for at, label in zip(times[mine], labels[mine], strict=True):
            middle.plot(at / rate, -row * gap, "v", ms=6, color=colours(label % 10), zorder=3)
    ticks = {
        "yticks": [-row * gap for row in range(len(shown))],
        "yticklabels": [f"ch{ch}" for ch in shown],
    }
    top.set(title=f"Raw recording (first {window / rate:.2f} s)", xlim=(0, t[-1]), **ticks)
    middle.set(
        title=f"Band-passed {p['freq_low']:g}-{p['freq_high']:g} Hz, detected spikes "
        "coloured by cluster",
        xlabel="time (s)",
        xlim=top.get_xlim(),
        **ticks,
    )
    shapes, space = fig.add_subplot(grid[2, 0]), fig.add_subplot(grid[2, 1])
    ms = (np.arange(waves.shape[1]) - waves.shape[1] // 2) / rate * 1e3
    for label in np.unique(labels):
        members = labels == label
        colour = colours(label % 10)
        mean, sd = waves[members].mean(axis=0), waves[members].std(axis=0)
        shapes.plot(ms, mean, lw=2, color=colour, label=f"cluster {label} (n={members.sum()})")
        shapes.fill_between(ms, mean - sd, mean + sd, color=colour, alpha=0.2)
        space.plot(scores[members, 0], scores[members, 1], ".", ms=3, color=colour)
    shapes.set(title="Mean waveform ± SD per cluster", xlabel="time (ms)", ylabel="µV")
    space.set(title="Waveform features (PCA)", xlabel="PC 1", ylabel="PC 2")
    if len(labels):
        shapes.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_results(
    out: Path,
    name: str,
    duration: float,
    spikes: dict[str, np.ndarray],
    noise: np.ndarray,
    p: dict[str, float],
) -> None:
    rate = p["sample_rate"]
    times, chans, amps, labels = spikes["times"], spikes["chans"], spikes["amps"], spikes["labels"]
    with (out / "spikes.csv").open("w") as f:
        f.write("time_s,channel,amplitude_uv,cluster\n")
        for t, c, a, k in zip(times, chans, amps, labels, strict=True):
            f.write(f"{t / rate:.6f},{c},{a:.1f},{k}\n")
    channels = int(p["channels"])
    summary = {
        "dataset": name,
        "duration_s": round(duration, 6),
        "spikes": len(times),
        "per_channel": {str(c): int((chans == c).sum()) for c in range(channels)},
        "per_cluster": {str(k): int((labels == k).sum()) for k in np.unique(labels)},
        "firing_rate_hz": {
            "per_channel": {
                str(c): round(int((chans == c).sum()) / duration, 3) for c in range(channels)
            },
            "per_cluster": {
                str(k): round(int((labels == k).sum()) / duration, 3) for k in np.unique(labels)
            },
        },
        "noise_uv": {str(c): round(float(v), 2) for c, v in enumerate(noise)},
        "threshold_uv": {
            str(c): round(float(-p["threshold_sd"] * v), 2) for c, v in enumerate(noise)
        },
        "parameters": {k: int(v) if k in INTEGERS else v for k, v in p.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def main() -> None:
    started = time.monotonic()
    p = read_config(os.environ.get("NCAAS_CONFIG", ""))
    data = Path(os.environ.get("NCAAS_DATA", ""))
    out = Path(os.environ.get("NCAAS_OUTPUT") or ".")
    raw = open_recording(data, int(p["channels"]))
    duration = len(raw) / p["sample_rate"]
    log(f"{data.name}: {raw.shape[1]} channels x {duration:.1f} s at {p['sample_rate']:g} Hz")
    noise = noise_levels(raw, p)
    log("noise (robust SD, µV): " + ", ".join(f"ch{c} {v:.1f}" for c, v in enumerate(noise)))
    times, chans, amps, waves, prints = detect(raw, p, noise)
    log(f"{len(times)} spikes after merging detections on neighbouring channels; clustering")
    labels, scores = cluster(waves, prints, int(p["n_clusters"]), int(p["seed"]))
    spikes = {"times": times, "chans": chans, "amps": amps, "waves": waves, "labels": labels}
    out.mkdir(parents=True, exist_ok=True)
    write_results(out, data.name, duration, spikes, noise, p)
    figure(raw, spikes, scores, p, out / "spikes.png")
    sizes = ", ".join(f"{int((labels == k).sum())}" for k in np.unique(labels))
    log(
        f"done in {time.monotonic() - started:.1f} s: {len(times)} spikes, clusters of "
        f"{sizes or 'none'}; wrote spikes.csv, summary.json, spikes.png"
    )


if __name__ == "__main__":
    main()
