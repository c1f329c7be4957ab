"""The reference for rudder's regression figure (BENCHMARKS.md): scikit-learn's
diabetes set, 5 random 80/20 splits (seeds 0-4), R^2 and RMSE on the held-out 20%
for LinearRegression, MLPRegressor and a torch MLP trained like rudder's default
(standardised features and target, SGD lr 0.1, batch 64, stopped after 5 epochs
without a better validation loss, the last weights kept as rudder's default policy does).
Usage: .venv/bin/python bench/regression_reference.py   (needs scikit-learn, torch)"""
import statistics

import numpy as np
import torch
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler


def torch_mlp(xtr, ytr, xva, yva, seed, hidden=(256, 128), epochs=100, patience=5):
    torch.manual_seed(seed)
    layers, width = [], xtr.shape[1]
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ym, ys = ytr.mean(), ytr.std()
    xt, yt = torch.tensor(xtr, dtype=torch.float32), torch.tensor((ytr - ym) / ys, dtype=torch.float32)[:, None]
    xv = torch.tensor(xva, dtype=torch.float32)
    best, wait = float("inf"), 0
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(xt[b]), yt[b]).backward()
            opt.step()
        with torch.no_grad():
            pred = net(xv)[:, 0].numpy() * ys + ym
        loss = mean_squared_error(yva, pred)
        if loss < best:
            best, wait = loss, 0
        else:
            wait += 1
            if wait >= patience:
                break
    return pred


def main():
    x, y = load_diabetes(return_X_y=True, scaled=False)
    rows = {"LinearRegression": [], "MLPRegressor(256,128)": [], "torch MLP 256,128 (SGD 0.1)": []}
    for seed in range(5):
        xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.2, random_state=seed)
        sc = StandardScaler().fit(xtr)
        xtr, xva = sc.transform(xtr), sc.transform(xva)
        preds = {
            "LinearRegression": LinearRegression().fit(xtr, ytr).predict(xva),
            "MLPRegressor(256,128)": MLPRegressor(hidden_layer_sizes=(256, 128), max_iter=2000, early_stopping=True,
                                                 random_state=seed).fit(xtr, ytr).predict(xva),
            "torch MLP 256,128 (SGD 0.1)": torch_mlp(xtr, ytr, xva, yva, seed),
        }
        for k, p in preds.items():
            rows[k].append((r2_score(yva, p), mean_squared_error(yva, p) ** 0.5))
    for k, v in rows.items():
        r2 = [a for a, _ in v]
        rmse = [b for _, b in v]
        print(f"{k:30} R2 {statistics.mean(r2):.3f} +- {statistics.stdev(r2):.3f}  "
              f"RMSE {statistics.mean(rmse):.1f}  (per split: {' '.join(f'{a:.3f}' for a in r2)})")


if __name__ == "__main__":
    main()
