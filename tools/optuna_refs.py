"""Writes scripts/tests/sweep_*.json: sweep-policy test cases whose expected decisions
are the real libraries': Optuna's SuccessiveHalvingPruner, HyperbandPruner and
MedianPruner run on recorded curves (which trials are pruned at which step), and, for
PBT, a line-by-line port of Ray Tune's PopulationBasedTraining decisions
(_quantiles, _checkpoint_or_exploit, _explore) fed the same random draws the test
gives the policy (`sweep.random`).

usage: python tools/optuna_refs.py [OUT]   (needs optuna; OUT defaults to
crates/policy/scripts/tests; the test suite writes them into a temporary folder and
compares them with the committed ones)
Steps are 1-based (the first epoch reports step 1), as rudder's sweeps report them.
"""
import json, math, random, sys

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
OUT = sys.argv[1] if len(sys.argv) > 1 else "crates/policy/scripts/tests"
NAN = float("nan")


def curves(seed, n, epochs, nan_trial=None, maximize=False):
    """Loss-like curves: a floor, a decay, noise; one trial turning NaN midway."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        floor, scale, rate = r.uniform(0.05, 0.6), r.uniform(0.3, 2.0), r.uniform(0.2, 1.2)
        c = [floor + scale * math.exp(-rate * t) + r.gauss(0, 0.02) for t in range(epochs)]
        if maximize:
            c = [1.0 - v / 3.0 for v in c]
        if i == nan_trial:
            c = c[: epochs // 2] + [NAN] * (epochs - epochs // 2)
        out.append([round(v, 6) if not math.isnan(v) else NAN for v in c])
    return out


def sequential(cs):
    return [(i, s) for i, c in enumerate(cs) for s in range(1, len(c) + 1)]


def interleaved(cs, jobs, seed):
    """`jobs` trials at once, each next report from a random running one."""
    r = random.Random(seed)
    waiting = list(range(len(cs)))
    running, at, order = [], {}, []
    while waiting or running:
        while waiting and len(running) < jobs:
            t = waiting.pop(0)
            running.append(t)
            at[t] = 0
        t = r.choice(running)
        at[t] += 1
        order.append((t, at[t]))
        if at[t] == len(cs[t]):
            running.remove(t)
    return order


def optuna_replay(pruner, cs, order, maximize, name="rudder"):
    """The order's reports through `pruner`: {trial id: step pruned at}."""
    study = optuna.create_study(
        study_name=name, direction="maximize" if maximize else "minimize", pruner=pruner
    )
    trials, stopped = {}, {}
    for i, step in order:
        if f"t{i}" in stopped:
            continue
        # Trial numbers in the trials' order, as a sweep numbers them.
        while i not in trials:
            trials[len(trials)] = study.ask()
        t = trials[i]
        t.report(cs[i][step - 1], step)
        if t.should_prune():
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
            stopped[f"t{i}"] = step
        elif step == len(cs[i]):
            v = cs[i][step - 1]
            study.tell(t, v if not math.isnan(v) else float("inf") * (-1 if maximize else 1))
    return stopped


def trial_list(cs):
    return [{"curve": [None if math.isnan(v) else v for v in c]} for c in cs]


def write(name, policy, params, cs, order, expect, maximize=False, default_order=False, random_draws=None):
    sweep = {"metric": "val_acc" if maximize else "val_loss", "mode": "max" if maximize else "min",
             "trials": trial_list(cs), "expect": expect}
    if not default_order:
        sweep["order"] = order
    if random_draws is not None:
        sweep["random"] = random_draws
    with open(f"{OUT}/{name}.json", "w") as f:
        json.dump({"policy": policy, "params": params, "sweep": sweep}, f, indent=1)
        f.write("\n")
    print(name, len(expect["stopped"]), "stopped")


# Optuna's pruners: three settings each, sequential and interleaved orders, min and max.
PRUNERS = {
    "asha": [
        (dict(grace_period=1, reduction_factor=4), lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=4)),
        (dict(grace_period=2, reduction_factor=3), lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3)),
        (dict(grace_period=1, reduction_factor=2, min_early_stopping_rate=1, bootstrap_count=2), lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2, min_early_stopping_rate=1, bootstrap_count=2)),
    ],
    "median": [
        (dict(), lambda: optuna.pruners.MedianPruner()),
        (dict(n_startup_trials=2, n_warmup_steps=3, interval_steps=2), lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=3, interval_steps=2)),
        (dict(n_startup_trials=3, n_min_trials=3, percentile=25.0), lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=3, n_min_trials=3)),
    ],
    "hyperband": [
        (dict(min_resource=1, max_resource=12, reduction_factor=3), lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=12, reduction_factor=3)),
        (dict(min_resource=1, reduction_factor=2), lambda: optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=2)),
        (dict(min_resource=2, max_resource=12, reduction_factor=2, bootstrap_count=1), lambda: optuna.pruners.HyperbandPruner(min_resource=2, max_resource=12, reduction_factor=2, bootstrap_count=1)),
    ],
}
for short, settings in PRUNERS.items():
    for k, (params, make) in enumerate(settings):
        maximize = k == 2
        cs = curves(100 + k, 16, 12, nan_trial=5, maximize=maximize)
        for label, order in [("seq", sequential(cs)), ("jobs4", interleaved(cs, 4, 7 + k))]:
            stopped = optuna_replay(make(), cs, order, maximize)
            assert stopped, f"{short} {k} {label}: nothing pruned; pick other curves"
            write(f"sweep_{short}_{k + 1}_{label}", f"sweep/{short}", params, cs, order,
                  {"stopped": stopped}, maximize, default_order=label == "seq")


# PBT: Ray Tune's decisions, ported, with the draws given.
class Pbt:
    def __init__(self, interval, burn_in, quantile, resample, factors, mutations, maximize):
        self.interval, self.burn_in, self.q, self.resample = interval, burn_in, quantile, resample
        self.factors, self.mutations, self.sign = factors, mutations, 1 if maximize else -1
        self.state = {}

    def explore(self, config, r):
        new, i = {}, 1
        for key in sorted(self.mutations):
            m, old = self.mutations[key], config[key]
            u1, u2 = r[i], r[i + 1]
            i += 2
            if isinstance(m, list):
                if u1 < self.resample or old not in m:
                    new[key] = m[math.floor(u2 * len(m))]
                else:
                    shift = [-1, 1][math.floor(u2 * 2)]
                    new[key] = m[min(max(m.index(old) + shift, 0), len(m) - 1)]
            else:
                if u1 < self.resample:
                    lo, hi = m["log"]
                    new[key] = math.exp(math.log(lo) + u2 * (math.log(hi) - math.log(lo)))
                else:
                    new[key] = old * self.factors[math.floor(u2 * len(self.factors))]
                if isinstance(old, int):
                    new[key] = int(new[key])
        return new

    def on_result(self, trial, time, value, statuses, configs, r):
        st = self.state.setdefault(trial, dict(score=None, at=0, trained=0, ckpt=False))
        out = {}
        if time < self.burn_in or time - st["at"] < self.interval:
            return out
        st.update(score=self.sign * value, trained=time, at=time)
        ranked = [t for t, s in self.state.items()
                  if s["score"] is not None and math.isfinite(s["score"]) and statuses[t] not in ("done", "stopped")]
        ranked.sort(key=lambda t: self.state[t]["score"])
        lower, upper = [], []
        if len(ranked) > 1:
            k = int(math.ceil(len(ranked) * self.q))
            if k > len(ranked) / 2:
                k = int(math.floor(len(ranked) / 2))
            lower, upper = ranked[:k], ranked[len(ranked) - k:]
        if any(t != trial and s in ("pending", "paused") for t, s in statuses.items()):
            out["pause"] = trial
        st["ckpt"] = trial in upper
        if trial in lower:
            clone = upper[math.floor(r[0] * len(upper))]
            if self.state[clone]["ckpt"]:
                out["exploit"] = (clone, self.explore(configs[clone], r))
                st["at"], st["trained"] = self.state[clone]["at"], self.state[clone]["trained"]
        return out


def pbt_case(n, params, cs, order, settings, maximize, seed):
    r = random.Random(seed)
    p = Pbt(params.get("perturbation_interval", 2), params.get("burn_in_period", 0),
            params.get("quantile_fraction", 0.25), params.get("resample_probability", 0.25),
            params.get("perturbation_factors", [1.2, 0.8]), params.get("mutations", {"lr": {"log": [0.0001, 1.0]}}),
            maximize)
    # Trials keep their state order as they first report (Ray: as they are added).
    for i in range(len(cs)):
        p.state.setdefault(f"t{i}", dict(score=None, at=0, trained=0, ckpt=False))
    statuses = {f"t{i}": "pending" for i in range(len(cs))}
    configs = {f"t{i}": dict(settings[i]) for i in range(len(cs))}
    draws, exploits, paused = [], [], []
    for i, step in order:
        t = f"t{i}"
        statuses[t] = "running"
        d = [r.random() for _ in range(32)]
        draws.append(d)
        out = p.on_result(t, step, cs[i][step - 1], statuses, configs, d)
        if "pause" in out:
            statuses[t] = "paused"
            paused.append([t, step])
        if "exploit" in out:
            clone, new = out["exploit"]
            exploits.append({"trial": t, "from": clone, "step": step, "settings": new})
            configs[t] = {**configs[clone], **new}
        if step == len(cs[i]):
            statuses[t] = "done"
    sweep = {"metric": "val_acc" if maximize else "val_loss", "mode": "max" if maximize else "min",
             "trials": [{"settings": settings[i], **trial_list(cs)[i]} for i in range(len(cs))],
             "order": order, "random": draws,
             "expect": {"exploits": exploits, "paused": paused}}
    with open(f"{OUT}/sweep_pbt_{n}.json", "w") as f:
        json.dump({"policy": "sweep/pbt", "params": params, "sweep": sweep}, f, indent=1)
        f.write("\n")
    print(f"sweep_pbt_{n}", len(exploits), "exploits", len(paused), "pauses")
    assert exploits


def rounds(n, epochs):
    """Synchronous rounds: every trial reports epoch 1, then every trial epoch 2, ..."""
    return [(i, s) for s in range(1, epochs + 1) for i in range(n)]


cs = curves(300, 8, 10)
lrs = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5, 1.0]
pbt_case(1, {}, cs, rounds(8, 10), [{"lr": lr, "batch_size": 64} for lr in lrs], False, 1)
pbt_case(2, {"perturbation_interval": 3, "quantile_fraction": 0.5, "resample_probability": 0.5,
             "mutations": {"lr": {"log": [0.001, 1.0]}, "batch_size": [16, 32, 64, 128]}},
         cs, interleaved(cs, 8, 3), [{"lr": lr, "batch_size": [16, 32, 64, 128][i % 4]} for i, lr in enumerate(lrs)], False, 2)
cs = curves(301, 6, 9, maximize=True)
pbt_case(3, {"perturbation_interval": 1, "burn_in_period": 2, "perturbation_factors": [2.0, 0.5, 1.0],
             "mutations": {"momentum": [0.0, 0.5, 0.9, 0.99], "lr": {"log": [0.01, 1.0]}}},
         cs, interleaved(cs, 3, 5), [{"lr": 0.1 * (i + 1), "momentum": [0.0, 0.5, 0.9, 0.99][i % 4]} for i in range(6)], True, 3)
