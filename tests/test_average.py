"""The weight average that ``train all`` validates and ships instead of the live network."""

import pytest
import torch

from skinedge.train.average import WeightAverage


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))


def _set(net: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)
        net[1].running_mean.fill_(value)
        net[1].num_batches_tracked.fill_(int(value))


def test_the_first_update_copies_and_later_ones_follow_with_the_warm_up_weight():
    live = _net()
    average = WeightAverage(live, decay=0.998)
    _set(live, 1.0)
    average.update(live, step=0)  # weight 0: a copy
    assert all(torch.equal(p, torch.ones_like(p)) for p in average.model.parameters())
    _set(live, 12.0)
    average.update(live, step=1)  # keeps 1/11 of the average: 1/11 + 12·10/11 = 11
    for p in [*average.model.parameters(), average.model[1].running_mean]:
        assert torch.allclose(p, torch.full_like(p, 11.0))
    assert average.model[1].num_batches_tracked.item() == 12  # a counter is copied, not averaged
    assert average.model[1].running_var.eq(1.0).all()  # a buffer equal on both sides stays


def test_late_updates_keep_the_decay_and_the_average_needs_no_gradients():
    live = _net()
    average = WeightAverage(live, decay=0.9)
    assert average.weight(10**6) == 0.9 and average.weight(5) == pytest.approx(5 / 15)
    _set(live, 0.0)
    average.update(live, step=0)
    _set(live, 1.0)
    for step in range(1000, 1010):
        average.update(live, step)
    p = next(average.model.parameters())
    assert torch.allclose(p, torch.full_like(p, 1 - 0.9 ** 10))
    assert not any(q.requires_grad for q in average.model.parameters())
    assert all(q.requires_grad for q in live.parameters()) and not average.model.training


def test_a_decay_of_one_or_more_is_refused():
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_net(), 1.0)


def test_a_checkpoint_from_before_the_average_resumes_with_the_average_starting_from_its_network(tmp_path):
    from skinedge.models.checkpoint import save_checkpoint
    from skinedge.models.srgan import Generator
    from skinedge.train.all.nets import _resume
    from skinedge.train.runner import Phase

    arch = {"blocks": 1, "features": 8, "scale": 4}
    torch.manual_seed(1)
    trained = Generator(**arch)
    last = tmp_path / "sr-pretrain-last.pt"
    save_checkpoint(last, "sr", arch, {"model": trained.state_dict(),
                                       "opt_model": torch.optim.Adam(trained.parameters()).state_dict()},
                    progress={"epoch": 0, "step": 5, "elapsed_s": 3.0})
    torch.manual_seed(2)
    live = Generator(**arch)
    average = WeightAverage(live, 0.999)
    phase = Phase("sr-pretrain", "sr", 1, 1, 1, lambda *a: {}, dict, "gain", {"model": average.model, "live": live},
                  {"model": torch.optim.Adam(live.parameters())}, arch)
    assert _resume(phase, last)["step"] == 5
    for net in (live, average.model):
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), trained.state_dict().values()))
