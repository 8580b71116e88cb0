"""Anatomy-guided masking: counts, guidance strength, uniform fallback, determinism, beta shared with workers."""

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, MapTransform
from scipy import stats

from transforms import AnatomyGuidedMask, AnatomyGuidedMaskd, SharedBeta
from transforms.guided_mask import draw_masks, guidance_map, num_masked, patch_distribution

P = 16


def vessel_map(size=128, patches=((0, 0), (0, 1), (2, 3), (5, 5), (7, 2)), pixels=(40, 10, 100, 5, 60)):
    """(1, size, size) binary map with `pixels` vessel pixels inside each listed (row, col) patch."""
    m = torch.zeros(1, size, size)
    for (r, c), n in zip(patches, pixels):
        block = torch.zeros(P * P)
        block[:n] = 1
        m[0, r * P:(r + 1) * P, c * P:(c + 1) * P] = block.reshape(P, P)
    return m


def masked_counts(masker, m, draws):
    counts = np.zeros((m.shape[-2] // P) * (m.shape[-1] // P))
    for _ in range(draws):
        counts += masker(m)[0].numpy()
    return counts


def test_patch_distribution_row_major():
    m = vessel_map()
    f = patch_distribution(m, P)
    assert f.shape == (64,)
    assert f.sum() == pytest.approx(1.0)
    expected = {0 * 8 + 0: 40, 0 * 8 + 1: 10, 2 * 8 + 3: 100, 5 * 8 + 5: 5, 7 * 8 + 2: 60}
    for i, n in expected.items():
        assert f[i] == pytest.approx(n / 215)
    assert np.count_nonzero(f) == len(expected)


@pytest.mark.parametrize("size,ratio,beta", [(64, 0.75, 0.0), (128, 0.75, 1.0), (128, 0.5, 0.5), (96, 0.6, 0.3)])
def test_exact_number_masked_and_mae_ids(size, ratio, beta):
    masker = AnatomyGuidedMask(P, ratio, beta)
    masker.set_random_state(3)
    m = vessel_map(size, patches=((0, 0), (1, 1)), pixels=(30, 50))
    L = (size // P) ** 2
    for _ in range(20):
        mask, ids_keep, ids_restore = masker(m)
        assert mask.dtype == torch.float32 and ids_keep.dtype == torch.int64 and ids_restore.dtype == torch.int64
        assert int(mask.sum()) == num_masked(L, ratio) == L - int(L * (1 - ratio))
        assert ids_keep.shape == (L - num_masked(L, ratio),)
        assert torch.all(mask[ids_keep] == 0)
        ids_shuffle = torch.argsort(ids_restore)
        assert torch.equal(ids_shuffle[: len(ids_keep)], ids_keep)
        assert torch.all(mask[ids_shuffle[len(ids_keep):]] == 1)
        restored = torch.gather(mask[ids_shuffle], 0, ids_restore)
        assert torch.equal(restored, mask)


def test_beta_one_masks_vessel_patches_more_often():
    m = vessel_map(128, patches=[(r, c) for r in range(4) for c in range(4)], pixels=[50 + 10 * i for i in range(16)])
    vessel = patch_distribution(m, P) > 0
    draws = 400
    rates = {}
    for beta in (0.0, 0.2, 1.0):
        masker = AnatomyGuidedMask(P, 0.5, beta)
        masker.set_random_state(11)
        counts = masked_counts(masker, m, draws)
        rates[beta] = counts[vessel].sum() / (vessel.sum() * draws)
    n = vessel.sum() * draws
    uniform = num_masked(64, 0.5) / 64
    z0 = (rates[0.0] - uniform) / np.sqrt(uniform * (1 - uniform) / n)
    assert abs(z0) < 4, f"beta=0 should mask vessel patches at the uniform rate {uniform}, got {rates[0.0]}"
    for low, high in ((0.0, 0.2), (0.2, 1.0)):
        pooled = (rates[low] + rates[high]) / 2
        z = (rates[high] - rates[low]) / np.sqrt(pooled * (1 - pooled) * 2 / n)
        assert z > 6, f"beta={high} rate {rates[high]} not clearly above beta={low} rate {rates[low]}"


def test_guided_draw_is_proportional_to_f():
    m = vessel_map(64, patches=((0, 0), (1, 1), (2, 2), (3, 3)), pixels=(10, 30, 60, 150))
    masker = AnatomyGuidedMask(P, 0.05, beta=1.0)  # num_mask = 1: the single draw follows f
    masker.set_random_state(5)
    draws = 3000
    counts = masked_counts(masker, m, draws)
    f = patch_distribution(m, P)
    assert counts.sum() == draws and np.all(counts[f == 0] == 0)
    p = stats.chisquare(counts[f > 0], f[f > 0] * draws).pvalue
    assert p > 1e-3, f"guided draws are not proportional to f (p={p})"


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_no_vessel_image_is_uniform(beta):
    masker = AnatomyGuidedMask(P, 0.75, beta)
    masker.set_random_state(7)
    empty = torch.zeros(1, 128, 128)
    draws = 2000
    counts = masked_counts(masker, empty, draws)
    assert counts.sum() == draws * num_masked(64, 0.75)
    p = stats.chisquare(counts).pvalue
    assert p > 1e-3, f"masking of an image without vessels is not uniform (p={p})"


def test_same_seed_same_mask_and_own_rng():
    m = vessel_map()
    a = AnatomyGuidedMaskd(beta=0.5).set_random_state(42)
    b = AnatomyGuidedMaskd(beta=0.5).set_random_state(42)
    c = AnatomyGuidedMaskd(beta=0.5).set_random_state(43)
    out_a, out_b, out_c = [], [], []
    for _ in range(5):
        torch.manual_seed(np.random.randint(1000))
        out_a.append(a({"vessel_mask": m})["mask"])
        out_b.append(b({"vessel_mask": m})["mask"])
        out_c.append(c({"vessel_mask": m})["mask"])
    assert all(torch.equal(x, y) for x, y in zip(out_a, out_b))
    assert not all(torch.equal(x, y) for x, y in zip(out_a, out_c))


def test_mixed_guidance_uses_the_soft_map():
    m = torch.zeros(1, 64, 64)
    soft = torch.zeros(1, 64, 64)
    soft[0, 48:, 48:] = 0.9
    masker = AnatomyGuidedMaskd(soft_key="vesselness", mask_ratio=0.05, beta=1.0, guidance="mixed")
    masker.set_random_state(0)
    for _ in range(10):
        d = masker({"vessel_mask": m, "vesselness": soft})
        assert d["mask"][15] == 1 and d["mask"].sum() == 1
    with pytest.raises(ValueError):
        AnatomyGuidedMaskd(guidance="mixed")


def test_bad_arguments():
    with pytest.raises(ValueError):
        AnatomyGuidedMask(P, 1.0)
    with pytest.raises(ValueError):
        AnatomyGuidedMask(P, 0.5, guidance="other")
    with pytest.raises(ValueError):
        AnatomyGuidedMask(P, 0.5, beta=1.5)(vessel_map())
    with pytest.raises(ValueError):
        AnatomyGuidedMask(P, 0.5)(torch.zeros(1, 60, 64))


class RecordBeta(MapTransform):
    """Writes the SharedBeta value seen in the worker into d["beta_seen"]."""

    def __init__(self, beta):
        super().__init__("vessel_mask")
        self.beta = beta

    def __call__(self, data):
        d = dict(data)
        d["beta_seen"] = torch.tensor(self.beta.value)
        return d


@pytest.mark.parametrize("persistent,context", [(False, None), (True, None), (True, "spawn")])
def test_beta_set_at_epoch_start_reaches_workers(persistent, context):
    beta = SharedBeta(0.0)
    m = vessel_map(64, patches=((0, 0), (3, 3)), pixels=(20, 20))
    data = [{"vessel_mask": m} for _ in range(12)]
    transform = Compose([AnatomyGuidedMaskd(mask_ratio=0.25, beta=beta), RecordBeta(beta)])
    loader = DataLoader(Dataset(data, transform), batch_size=3, num_workers=2, persistent_workers=persistent,
                        multiprocessing_context=context)
    schedule = {1: 0.0, 2: 0.7, 3: 1.0}
    seen = {e: [] for e in schedule}

    def step(engine, batch):
        seen[engine.state.epoch].append(batch)

    engine = Engine(step)

    @engine.on(Events.EPOCH_STARTED)
    def set_beta(engine):
        beta.value = schedule[engine.state.epoch]

    engine.run(loader, max_epochs=3)
    for epoch, batches in seen.items():
        assert len(batches) == 4
        values = torch.cat([b["beta_seen"] for b in batches])
        assert torch.allclose(values, torch.tensor(schedule[epoch], dtype=values.dtype)), (epoch, values)
    # mask_ratio 0.25 on 16 patches: 4 masked; beta=1 puts both vessel patches (0 and 15) in every mask.
    last = torch.cat([b["mask"] for b in seen[3]])
    assert torch.all(last[:, 0] == 1) and torch.all(last[:, 15] == 1)
    first = torch.cat([b["mask"] for b in seen[1]])
    assert not (torch.all(first[:, 0] == 1) and torch.all(first[:, 15] == 1))


def test_guidance_map_by_hand():
    m = torch.tensor([[0, 1], [1, 0]], dtype=torch.float32)[None]
    soft = torch.tensor([[0.2, 0.4], [1.5, -0.1]])[None]
    expected = 0.5 * m + 0.5 * torch.tensor([[0.2, 0.4], [1.0, 0.0]])[None]
    torch.testing.assert_close(guidance_map(m, soft, "mixed"), expected)
    assert guidance_map(m, None, "mask").tolist() == [[[0.0, 1.0], [1.0, 0.0]]]
    with pytest.raises(ValueError):
        guidance_map(m, soft[..., :1], "mixed")


def test_batched_draw_of_two_follows_successive_draws():
    """k = 2 guided patches of 3 with f = (0.5, 0.3, 0.2): each unordered pair {i, j} has probability
    f_i f_j / (1 - f_i) + f_j f_i / (1 - f_j), as two successive draws without replacement; 6,000 rows in one call."""
    f = torch.tensor([[0.5, 0.3, 0.2, 0.0]], dtype=torch.float64).repeat(6000, 1)
    mask, ids_keep, ids_restore = draw_masks(f, 0.5, 1.0, torch.Generator().manual_seed(0))
    assert torch.all(mask.sum(1) == 2) and torch.all(mask[:, 3] == 0)
    assert torch.equal(ids_keep, torch.argsort(mask, dim=1, stable=True)[:, :2])
    kept = mask[:, :3].argmin(1)
    p = f[0, :3]
    pair = {k: sum(p[i] * p[j] / (1 - p[i]) for i in range(3) for j in range(3) if len({i, j, k}) == 3)
            for k in range(3)}
    counts = np.bincount(kept.numpy(), minlength=3)
    assert stats.chisquare(counts, [float(pair[k]) * 6000 for k in range(3)]).pvalue > 1e-3


def test_batched_rows_are_drawn_independently_with_their_own_k():
    """Rows with f of one, two and zero vessel patches at beta 1: k is capped by each row's vessel patches."""
    f = torch.zeros(3, 16, dtype=torch.float64)
    f[0, 5] = 1.0
    f[1, [2, 9]] = 0.5
    gen = torch.Generator().manual_seed(1)
    rows = [draw_masks(f, 0.25, 1.0, gen)[0] for _ in range(200)]
    masks = torch.stack(rows)
    assert torch.all(masks.sum(-1) == 4)
    assert torch.all(masks[:, 0, 5] == 1) and torch.all(masks[:, 1, 2] == 1) and torch.all(masks[:, 1, 9] == 1)
    rates = masks[:, 2].mean(0)
    assert rates.min() > 0.1 and rates.max() < 0.45, f"an all-zero row should be uniform: {rates}"
    assert not torch.equal(masks[:, 0], masks[:, 2])
