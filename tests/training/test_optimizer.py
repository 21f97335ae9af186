"""Adam's saved state: resumed by the optimizer of this aerec, whatever made it."""

from __future__ import annotations

import torch

from aerec_cli.training.optimizer import adam, adam_tensors, load_adam

CPU = torch.device("cpu")


def _stepped(optimizer, weight):
    (weight**2).sum().backward()
    optimizer.step()
    optimizer.zero_grad()


def test_a_state_saved_by_an_unfused_adam_resumes_in_the_fused_one():
    torch.manual_seed(0)
    weight = torch.randn(5, requires_grad=True)
    older = torch.optim.Adam([weight], lr=0.1)  # as runs saved before the fused Adam
    _stepped(older, weight)
    tensors, groups = adam_tensors(older)
    tensors = {name: value.clone() for name, value in tensors.items()}  # as read from a file
    assert not groups[0]["fused"]

    copy = weight.detach().clone().requires_grad_()
    resumed = adam([copy], lr=0.1, device=CPU)
    load_adam(resumed, tensors, groups, CPU)
    assert resumed.param_groups[0]["fused"]
    _stepped(older, weight)
    _stepped(resumed, copy)
    assert torch.allclose(weight, copy, atol=1e-6)
