"""A tiny study used to test the spine: fits y = 3x + 1 by SGD and logs the loss each step.

It lives in the tests and is plugged in through `--config-dir`, the way a user adds a study.
"""

import time

import torch

from aaexp.core.progress import bar


def run(ctx):
    cfg = ctx.cfg
    g = torch.Generator().manual_seed(int(cfg.seed))
    x = torch.randn(64, 1, generator=g)
    y = 3 * x + 1 + 0.1 * torch.randn(64, 1, generator=g)
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.toy.lr)
    loss = torch.tensor(0.0)
    for step in bar(range(cfg.trainer.steps), enabled=ctx.progress):
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        ctx.tracker.log_metrics({"train/loss": loss.item()}, step=step)
        time.sleep(cfg.toy.step_sleep_s)
    if cfg.toy.fail:
        raise RuntimeError("toy study failed on purpose")
    (ctx.out_dir / "weights.txt").write_text(str(model.weight.item()))
    ctx.tracker.log_artifact(ctx.out_dir / "weights.txt")
    return {"final/loss": loss.item(), "eval/err/low": loss.item() * 2, "eval/err/high": loss.item() * 3}
