"""Plots of load results: latency over time, latency against offered rate, latency distributions.

Each function takes what `servelab.load` (or the simulator, which returns the same shape)
produced, draws on `ax` (or a new figure), labels axes with units, titles the plot with what
it shows in numbers, and returns the Axes so a lab can add to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

_PERCENTILE_NAMES = {"p50": "p50 (median)", "p90": "p90", "p95": "p95", "p99": "p99", "p999": "p99.9"}


def _axes(ax, size=(8, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def latency_over_time(result, ax=None, *, slo_ms: float | None = None, window_s: float = 1.0):
    """Every request's latency at its intended send time, with the p95 of each `window_s` window.

    Failed requests are drawn as red crosses at the top, so they cannot pass for fast answers.
    """
    ax = _axes(ax)
    frame = result.frame
    ok = (frame["status"] >= 200) & (frame["status"] < 300)
    t, latency_ms = frame["intended_s"], frame["latency_s"] * 1000.0
    ax.scatter(t[ok], latency_ms[ok], s=4, alpha=0.35, color="tab:blue", label="request (ok)")
    window = np.floor(t[ok] / window_s).astype(int)  # windows without a success stay empty (NaN)
    p95 = latency_ms[ok].groupby(window).quantile(0.95).reindex(range(window.max() + 1 if len(window) else 0))
    p95.index = p95.index * window_s
    ax.stairs(p95.to_numpy(), np.arange(len(p95) + 1) * window_s, color="tab:orange", lw=2, baseline=None,
              label=f"p95 per {window_s:g} s")
    if (~ok).any():
        top = latency_ms[ok].max() if ok.any() else 1.0
        ax.scatter(t[~ok], np.full((~ok).sum(), top), marker="x", color="tab:red", s=16,
                   label=f"failed ({(~ok).sum()})")
    if slo_ms is not None:
        ax.axhline(slo_ms, color="tab:red", ls="--", lw=1, label=f"SLO {slo_ms:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel("intended send time since start (s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(_over_time_title(result.summary(), result.meta, p95))
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _over_time_title(s: dict, meta: dict, p95: pd.Series) -> str:
    mode = "closed loop" if meta.get("mode") == "closed" else f"open loop at {s['offered_rate']:.0f} req/s"
    title = f"{mode}: p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms"
    if len(p95):
        title += f"; worst second p95 {p95.max():.0f} ms at t={p95.idxmax():.0f} s"
    if s["errors"]:
        title += f"; {s['errors']} failed"
    return title


def latency_vs_rate(results, ax=None, *, slo_ms: float | None = None,
                    percentiles: Iterable[str] = ("p50", "p95", "p99")):
    """Latency percentiles against offered rate, one point per run of a sweep.

    `results` is a `Sweep` or a list of Results. Runs with failures are ringed in red: their
    percentiles describe only the requests that succeeded.
    """
    ax = _axes(ax)
    table = _sweep_table(results)
    rates = table["offered_rate"]
    for name in percentiles:
        ax.plot(rates, table[name], marker="o", label=_PERCENTILE_NAMES.get(name, name))
    failing = table[table["errors"] > 0]
    if len(failing):
        ax.scatter(failing["offered_rate"], failing[list(percentiles)[-1]], s=160, facecolors="none",
                   edgecolors="tab:red", label="run with failures")
    if slo_ms is not None:
        ax.axhline(slo_ms, color="tab:red", ls="--", lw=1, label=f"SLO {slo_ms:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(_vs_rate_title(table, slo_ms, "p95" if "p95" in percentiles else list(percentiles)[-1]))
    ax.legend(fontsize="small")
    return ax


def _sweep_table(results) -> pd.DataFrame:
    rows = [r.summary() for r in results]
    return pd.DataFrame(rows).sort_values("offered_rate").reset_index(drop=True)


def _vs_rate_title(table: pd.DataFrame, slo_ms: float | None, key: str) -> str:
    first, last = table.iloc[0], table.iloc[-1]
    if slo_ms is None:
        return (f"{key} grows from {first[key]:.1f} ms at {first['offered_rate']:.0f} req/s "
                f"to {last[key]:.1f} ms at {last['offered_rate']:.0f} req/s")
    meets = (table[key] <= slo_ms) & (table["errors"] == 0)
    if meets.all():
        return f"{key} meets the {slo_ms:g} ms SLO at every rate tried (up to {last['offered_rate']:.0f} req/s)"
    if not meets.iloc[0]:
        return f"{key} misses the {slo_ms:g} ms SLO already at {first['offered_rate']:.0f} req/s"
    best = table.loc[meets.cumprod().astype(bool), "offered_rate"].max()
    return f"{key} meets the {slo_ms:g} ms SLO up to {best:.0f} req/s, then misses it"


def latency_cdf(results: Mapping[str, object], ax=None):
    """Latency distributions side by side (e.g. open vs closed loop): the fraction of requests at or below x.

    The x axis is logarithmic so that a tail of stalls is as visible as the fast median.
    """
    ax = _axes(ax)
    p99s = []
    for label, result in results.items():
        frame = result.frame
        ok = (frame["status"] >= 200) & (frame["status"] < 300)
        latency_ms = np.sort(frame.loc[ok, "latency_s"].to_numpy() * 1000.0)
        ax.plot(latency_ms, np.arange(1, len(latency_ms) + 1) / max(len(latency_ms), 1), label=label)
        p99s.append(f"{label} p99 {result.summary()['p99']:.1f} ms")
    ax.axhline(0.99, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests at or below")
    ax.set_title(" vs ".join(p99s))
    ax.legend(loc="lower right", fontsize="small")
    return ax


# -- Lab figures (labs area): one picture per lab question, titled with what it found ----------


def latency_histogram(values, ax=None, *, unit: str = "ms", what: str = "requests"):
    """A distribution of measured latencies with p50/p95/p99 marked; the title gives p99 / p50."""
    ax = _axes(ax)
    values = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    ax.hist(values, bins=np.geomspace(values.min(), values.max(), 60), color="tab:blue", alpha=0.7)
    for value, name, style in ((p50, "p50", "-"), (p95, "p95", "--"), (p99, "p99", ":")):
        ax.axvline(value, color="black", ls=style, label=f"{name} {value:.1f} {unit}")
    ax.set_xscale("log")
    ax.set_xlabel(f"latency ({unit}, log scale)")
    ax.set_ylabel("number of calls")
    ax.set_title(f"{what}: p99 is {p99 / p50:.1f}x p50")
    ax.legend(fontsize="small")
    return ax


def latency_breakdown(parts: Mapping[str, Mapping[str, float]], ax=None, *, unit: str = "ms"):
    """Stacked bars, one per way of calling the model, split into named parts ("model" among them).

    The title gives the model's share of the slowest way's total.
    """
    ax = _axes(ax, size=(8, 1.5 + 0.7 * len(parts)))
    colours: dict[str, str] = {}
    for row, pieces in enumerate(parts.values()):
        left = 0.0
        for piece, value in pieces.items():
            new = piece not in colours
            colour = colours.setdefault(piece, f"C{len(colours)}")
            ax.barh(row, value, left=left, color=colour, label=piece if new else None)
            left += value
        ax.text(left, row, f"  {left:.3f} {unit}", va="center")
    ax.set_yticks(range(len(parts)), list(parts))
    ax.invert_yaxis()
    ax.margins(x=0.25)
    ax.set_xlabel(f"median time per prediction ({unit})")
    slowest = max(parts.values(), key=lambda pieces: sum(pieces.values()))
    share = slowest.get("model", 0.0) / sum(slowest.values())
    ax.set_title(f"The model is {share:.0%} of a request's time over HTTP; the rest is serving overhead")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def pod_startup(startup: pd.DataFrame, ax=None):
    """Each pod's start as two stacked bars: created -> running, running -> ready (`analysis.timelines.pod_startup`)."""
    ax = _axes(ax, size=(8, 2.2 + 0.5 * len(startup)))
    rows = range(len(startup))
    to_running, to_ready = startup["created → running (s)"], startup["running → ready (s)"]
    ax.barh(rows, to_running, color="tab:grey", label="created → running (process starts)")
    ax.barh(rows, to_ready, left=to_running, color="tab:green", label="running → ready (imports, model, probe)")
    ax.set_yticks(rows, [name.rsplit("-", 1)[-1] for name in startup.index])
    ax.set_ylabel("pod (name ends with)")
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the pod was created")
    total = startup["created → ready (s)"]
    ax.set_title(f"A new pod is Ready after {total.median():.1f} s, "
                 f"{(to_ready / total).median():.0%} of it after its process started")
    ax.figure.legend(loc="outside lower center", ncol=2, fontsize="small")
    return ax


def mark_saturation(ax, rate: float | None):
    """Mark the saturation point found by `analysis.sweeps.saturation_rate` on a latency_vs_rate plot."""
    if rate is not None:
        ax.axvline(rate, color="black", ls=":", lw=1.5, label=f"saturation: p95 turns up at {rate:g} req/s")
        ax.legend(fontsize="small")
    return ax


def cost_per_million(costs: pd.DataFrame, ax=None):
    """$ per 1M predictions against offered rate (`analysis.sweeps.cost_by_rate`), with the idle share beside it."""
    ax = _axes(ax)
    rates, per_million = costs.index.to_numpy(dtype=float), costs["$ per 1M predictions"]
    ax.plot(rates, per_million, marker="o", color="tab:green", label="$ per 1M predictions")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda value, _: f"${value:g}"))
    ax.yaxis.set_minor_formatter(plt.FuncFormatter(  # label only the 2s and 5s between powers of ten
        lambda value, _: f"${value:g}" if f"{value:.0e}"[0] in "25" else ""))
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel("$ per 1M predictions (log scale)")
    idle = ax.twinx()
    idle.plot(rates, costs["idle share"] * 100, ls="--", color="tab:grey", label="idle share")
    idle.set_ylabel("idle share of the cost (%)")
    idle.set_ylim(0, 100)
    cheapest = per_million.idxmin()
    ax.set_title(f"A prediction costs {per_million.iloc[0] / per_million.min():.0f}x more at "
                 f"{rates[0]:g} req/s than at {cheapest:g} req/s")
    lines = ax.get_legend_handles_labels(), idle.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize="small")
    return ax


def replicas_over_time(result, timeline: pd.DataFrame, start_s: float, edges: list[float], *,
                       slo_ms: float | None = None):
    """Latency over time above, and below it the ready pods, the HPA's replica count and its
    decisions' CPU utilization, on one time axis, so the scale-up gap lines up with the p95 it causes.

    `timeline` is `cluster.timeline()`, `start_s` the cluster's clock when the run began, `edges`
    where the offered rate changed (`analysis.timelines.step_edges`).
    """
    from servelab.analysis import timelines
    from servelab.backends import base

    decisions = timeline[(timeline.kind == base.HPA_DECISION) & (timeline.t_s >= start_s)]
    scaled = timeline[(timeline.kind == base.SCALED) & (timeline.t_s >= start_s)]
    ready = timelines.ready_pods(timeline, start_s)
    delays = timelines.scaling_delays(timeline, start_s, edges)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True, layout="constrained")
    latency_over_time(result, ax=top, slo_ms=slo_ms)
    bottom.step(ready["t"], ready["ready"], where="post", color="tab:green", lw=2, label="ready pods")
    bottom.step(scaled["t_s"] - start_s, scaled["new"], where="post", color="black", ls=":",
                label="replicas the HPA set")
    bottom.set_ylabel("replicas")
    bottom.set_ylim(0, max(4, ready["ready"].max(), scaled["new"].max() if len(scaled) else 0) + 0.5)
    util = bottom.twinx()
    util.plot(decisions["t_s"] - start_s, decisions["utilization_pct"], "o", color="tab:purple", ms=4,
              label="HPA decision: CPU utilization")
    if len(decisions):
        util.axhline(decisions["target_pct"].iloc[0], color="tab:purple", ls="--", lw=1, label="target utilization")
    util.set_ylabel("CPU utilization (% of request)")
    for edge in edges[1:-1]:
        for ax in (top, bottom):
            ax.axvline(edge, color="grey", lw=0.8)
    bottom.set_xlabel("time since the run started (s); grey lines: the rate changes")
    up, ready_after, down = delays.to_numpy()
    bottom.set_title(f"The HPA added pods {up:.1f} s after the step, they were ready {ready_after:.1f} s later; "
                     f"it removed pods {down:.0f} s after the drop")
    handles = [a.get_legend_handles_labels() for a in (bottom, util)]
    bottom.legend(handles[0][0] + handles[1][0], handles[0][1] + handles[1][1], fontsize="small", loc="upper right")
    return fig


def p95_and_cost(table: pd.DataFrame, *, slo_ms: float, cheap: str, dear: str):
    """Bar charts of p95 in the peak and $ per 1M, one bar per run (`analysis.compare.step_comparison`'s table);
    the title says how many times `dear` costs `cheap` per prediction."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    table["p95 in the peak (ms)"].plot.barh(ax=left, color="tab:orange", logx=True)
    left.axvline(slo_ms, color="tab:red", ls="--", lw=1, label=f"SLO {slo_ms:g} ms")
    left.set_xlabel("p95 during the peak (ms, log scale)")
    left.legend(fontsize="small")
    table["$ per 1M predictions"].plot.barh(ax=right, color="tab:green")
    right.set_xlabel("$ per 1M predictions")
    right.set_yticklabels([])
    times = table.loc[dear, "$ per 1M predictions"] / table.loc[cheap, "$ per 1M predictions"]
    fig.suptitle(f"'{dear}' cost {times:.1f}x what '{cheap}' cost per prediction")
    return fig


def p95_by_replicas(sweeps: Mapping[int, object], *, slo_ms: float, ax=None):
    """p95 against offered rate, one curve per replica count, with the SLO line; the title reads off
    the highest rate each count served within the SLO (`analysis.sweeps.max_rate_within_slo`)."""
    ax = _axes(ax)
    best = _p95_curves(ax, sweeps, slo_ms, _replicas_label, with_p50=False)
    ax.set_title("p95 within the SLO up to " + ", ".join(f"{r:g}" for r in best.values())
                 + " req/s with " + ", ".join(map(str, best)) + " replicas")
    return ax


def _p95_curves(ax, sweeps: Mapping, slo_ms: float, label, *, with_p50: bool) -> dict:
    """One p95 curve per sweep (and a dashed p50 with failing runs ringed, if `with_p50`), the SLO
    line and log axes; returns each sweep's highest rate within the SLO, for the caller's title."""
    from servelab.analysis.sweeps import max_rate_within_slo

    best = {}
    for i, (key, sweep) in enumerate(sweeps.items()):
        table = sweep.summary()
        best[key] = max_rate_within_slo(table, slo_ms)
        ax.plot(table.index, table["p95"], marker="o", color=f"C{i}", label=f"{label(key)}: p95" if with_p50 else label(key))
        if with_p50:
            ax.plot(table.index, table["p50"], marker=".", ls="--", color=f"C{i}", label=f"{label(key)}: p50")
            failing = table[table["errors"] > 0]
            ax.scatter(failing.index, failing["p95"], s=160, facecolors="none", edgecolors="tab:red",
                       label="run with failures" if len(failing) and i == 0 else None)
    ax.axhline(slo_ms, color="tab:red", ls=":" if with_p50 else "--", lw=1, label=f"SLO {slo_ms:g} ms")
    ax.set(yscale="log", xlabel="offered rate (requests/s)",
           ylabel="latency (ms, log scale)" if with_p50 else "p95 latency (ms, log scale)")
    ax.legend(fontsize="small")
    return best


def cost_by_replicas(costs: pd.DataFrame, ax=None):
    """$ per 1M predictions against offered rate, one curve per replica count (`costs` indexed by
    replicas and offered rate, as `analysis.sweeps.cost_by_rate` per sweep); the legend gives each count's $ per hour."""
    ax = _axes(ax)
    per_hour = costs.groupby(level="replicas")["$ per hour"].median()
    for n in per_hour.index:
        per_million = costs.loc[n, "$ per 1M predictions"]
        ax.plot(per_million.index, per_million, marker="o", label=f"{_replicas_label(n)} (${per_hour[n]:.3f}/h)")
    ax.set(yscale="log", xlabel="offered rate (requests/s)", ylabel="$ per 1M predictions (log scale)")
    lowest_rate = costs.index.get_level_values("offered_rate").min()
    low = costs.xs(lowest_rate, level="offered_rate")["$ per 1M predictions"]
    ax.set_title(f"At {lowest_rate:g} req/s a prediction costs {low.max() / low.min():.1f}x more with {low.idxmax()} replicas than with {low.idxmin()}")
    ax.legend(fontsize="small")
    return ax


def _replicas_label(n: int) -> str:
    return f"{n} replica{'s' if n > 1 else ''}"


# -- Lab 06: online, batch and edge --------------------------------------------------------------


def serving_ways(table: pd.DataFrame):
    """How long a prediction waits and what a million cost, one bar per way of serving (`serving_ways.serving_ways`).

    The wait is p95 for online and edge, and the time to the last result for batch (its rows have
    no answer of their own until the Job ends), on one log axis so both fit.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
    wait_ms = table["p95 (ms)"].fillna(table["time to last result (s)"] * 1000).astype(float)
    colours = ["tab:blue", "tab:orange", "tab:green"][: len(table)]
    left.barh(table.index, wait_ms, color=colours, log=True)
    left.set_xlabel("wait for a prediction (ms, log): p95, or time to last result for batch")
    left.invert_yaxis()
    per_million = table["$ per 1M predictions"].astype(float)
    right.barh(table.index, per_million, color=colours)
    right.set_xlabel("$ per 1M predictions (cloud bill)")
    right.set_yticklabels([])
    right.invert_yaxis()
    for row, value in enumerate(per_million):
        right.text(value, row, f"  ${value:.4f}" if value else "  $0 (the device's owner pays)", va="center")
    right.margins(x=0.3)
    online, batch = per_million.iloc[0], per_million.iloc[1]
    fig.suptitle(f"Batch cost {online / batch:.0f}x less per prediction than online, and made its rows wait "
                 f"{wait_ms.iloc[1] / wait_ms.iloc[0]:.0f}x longer than online's p95")
    return fig


def p95_by_setting(sweeps: Mapping[str, object], *, slo_ms: float, ax=None):
    """p50 (dashed) and p95 (solid) against offered rate, one colour per server setting (e.g. with
    and without dynamic batching); failing runs ringed in red. The title reads off each setting's
    highest rate within the SLO (`analysis.sweeps.max_rate_within_slo`)."""
    ax = _axes(ax)
    best = _p95_curves(ax, sweeps, slo_ms, str, with_p50=True)
    ax.set_title("p95 within the SLO up to " + "; ".join(f"{rate:g} req/s {name}" for name, rate in best.items()))
    return ax


def edge_latency(runs: Mapping[str, object], *, slo_ms: float, ax=None):
    """Each prediction's time, in the order made, one series per device run (`serving_ways.predict_on_device`).

    In order, not sorted, because under a CPU limit the pattern is the point: runs of fast
    predictions, then one that waits for the next slice of CPU time.
    """
    ax = _axes(ax)
    worst = {}
    for name, run in runs.items():
        ms = run.seconds * 1000
        ax.plot(np.arange(1, len(ms) + 1), ms, marker=".", ms=3, lw=0.6, label=name)
        worst[name] = np.percentile(ms, 95)
    ax.axhline(slo_ms, color="tab:red", ls="--", lw=1, label=f"SLO {slo_ms:g} ms")
    ax.set(yscale="log", xlabel="prediction number (one row each, back to back)", ylabel="time (ms, log scale)")
    ax.set_title("p95: " + ", ".join(f"{name} {p95:.2f} ms" for name, p95 in worst.items()))
    ax.legend(fontsize="small", loc="center right")
    return ax


# -- Lab 07: a simulated day, and a live check of its prediction ----------------------------------


def day_by_architecture(day):
    """p95 per window above, pods paid for per window below (offered rate behind them), one line per
    architecture of `architectures.simulate_day`, so a p95 spike lines up with the pods that caused it."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, layout="constrained")
    scale = 24 / day.duration_s  # a compressed day is drawn on the same 24 hours
    x = day.rate.index.to_numpy() * scale
    for i, name in enumerate(day.p95_ms.columns):
        style = dict(color=f"C{i}", where="post", label=name)
        top.step(x, day.p95_ms[name], **style)
        bottom.step(x, day.pods[name], **style)
    top.axhline(day.slo_ms, color="tab:red", ls="--", lw=1, label=f"SLO {day.slo_ms:g} ms")
    top.axvspan(day.peak[0] * scale, day.peak[1] * scale, color="grey", alpha=0.15, label="peak hour")
    top.set(yscale="log", ylabel="p95 per window (ms, log scale)")
    within = (day.p95_ms.max() <= day.slo_ms).sum()
    top.set_title(f"{within} of {len(day.p95_ms.columns)} architectures keep p95 within {day.slo_ms:g} ms "
                  "in every window of the day")
    top.legend(fontsize="small", loc="upper left")
    rate = bottom.twinx()
    rate.fill_between(x, day.rate, step="post", color="grey", alpha=0.2)
    rate.set_ylabel("offered requests/s (grey)")
    rate.set_ylim(0, day.rate.max() * 1.1)
    bottom.set_zorder(rate.get_zorder() + 1)
    bottom.patch.set_visible(False)
    bottom.set(ylabel="pods paid for (mean per window)", xlabel="hour of the day")
    bottom.set_ylim(0, day.pods.max().max() + 0.5)
    busiest = day.pods.max()
    bottom.set_title(f"Pods range from {day.pods.min().min():.1f} to {busiest.max():.1f}; "
                     f"'{busiest.idxmax()}' holds the most")
    return fig


def predicted_vs_measured(live, predicted, *, window_s: float, slo_ms: float):
    """The live run and the simulator's prediction of it on one time axis: p95 per window above,
    pods paid for below; the title gives both overall p95s and the prediction's error."""
    from servelab import architectures

    duration = max(live.duration_s, predicted.duration_s)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, layout="constrained")
    for run, name, colour in ((live, "measured", "tab:blue"), (predicted, "predicted", "tab:orange")):
        p95 = architectures.p95_over_time(run, window_s, duration)
        top.step(p95.index, p95, where="post", color=colour, label=name)
        pods = architectures.pods_over_time(run, window_s, duration)
        bottom.step(pods.index, pods, where="post", color=colour, label=name)
    top.axhline(slo_ms, color="tab:red", ls="--", lw=1, label=f"SLO {slo_ms:g} ms")
    top.set(yscale="log", ylabel=f"p95 per {window_s:g} s (ms, log scale)")
    top.yaxis.set_major_formatter(plt.FuncFormatter(lambda value, _: f"{value:g}"))  # 10, not 10^1
    top.yaxis.set_minor_formatter(plt.FuncFormatter(  # and 2, 5, 20, 50 between the powers of ten
        lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "25" else ""))
    measured, forecast = live.summary()["p95"], predicted.summary()["p95"]
    top.set_title(f"p95 over the run: measured {measured:.1f} ms, predicted {forecast:.1f} ms "
                  f"({(forecast - measured) / measured:+.0%})")
    top.legend(fontsize="small")
    bottom.set(ylabel="pods paid for (mean per window)", xlabel="time since the run started (s)")
    bottom.set_ylim(0, max(bottom.get_ylim()[1], 1) + 0.5)
    bottom.legend(fontsize="small")
    return fig
