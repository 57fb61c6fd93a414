"""Learnable polyphase sampling (LPS): the grid chosen by a learned score.

The successor of APS (Rojas-Gomez, Lim, Schwing, Do & Yeh, NeurIPS 2022: LPD for
downsampling, LPU for upsampling), written here from its maths as one more selection rule
of the sampling-layer family (:class:`~apslib.layers.Selection`):

* **Scores.** For the map ``z`` whose polyphase components ``z_p`` (phase order,
  :data:`~apslib.polyphase.PHASES`) are the candidates, a small scoring network ``f``, the
  same for all four components, gives one logit per component, the mean square of its
  output: ``s_p = mean over pixels of f(z_p)**2``, with ``f`` = 3x3 conv (circular padding)
  -> ReLU -> 1x1 projection to one channel (:func:`scorer_width` hidden channels). With
  ``f`` the identity this is APS's (squared, per pixel) l2 criterion: LPS learns the norm.
  A mean of ``f`` itself would not do: where the scorer acts linearly its mean sees only the
  component's mean, and after a blur (no Nyquist content) the four components' means are
  equal, so tiny maps tied.
* **Why the logits permute exactly under an integer circular shift.** Shifting ``z`` by
  ``k`` permutes its components and rolls each of them by at most one pixel per axis
  (Proposition 1's bookkeeping). ``f`` is a stack of circular convolutions and pointwise
  maps, so ``f(roll(z_p)) = roll(f(z_p))``, and the mean over pixels does not see a roll:
  ``s(T_k z)`` is ``s(z)`` with its entries permuted like the components. Numerically the
  per-pixel scores are the same operations at every pixel (rolled bit for bit), and their
  means accumulate in float64 (float32 on MPS), so the order of summation, which a shift
  changes, moves a logit by ~1e-16 relative only. The 1x1 projection is therefore a
  per-pixel dot product over the channels in float64 too: as a float32 GEMM (or a float32
  channel reduction) its blocking over the pixels rounds a pixel differently at another
  place (measured: 6e-8, enough to flip a near-tie).
* **Evaluation** (``module.eval()``): the component of largest logit; exact ties (a
  component on which the scorer's ReLU is off everywhere scores exactly ``bias**2``) go to
  the largest l2 norm, APS's criterion, then to the lowest phase index
  (:func:`break_ties`). The whole U-Net is then exactly equivariant to every circular
  shift, for any scorer weights, trained or not (Proposition 2's argument).
* **Training** (``module.train()``): the Gumbel-softmax relaxation of sampling the choice
  from ``softmax(s)``: weights ``w = softmax((s + g) / tau)`` with ``g`` i.i.d.
  Gumbel(0, 1) per sample and phase; the down layer keeps ``sum_p w_p z_p`` and the up layer
  of the same level puts its input on every grid with the same weights
  (:func:`~apslib.polyphase.mix_phases`, :func:`~apslib.polyphase.spread_phases`). With
  ``straight_through`` the forward keeps the one component ``argmax(s + g)`` (one-hot
  weights, exactly) and the gradient is the soft weights'. The temperature ``tau`` falls
  during training (:func:`temperature_at`); the noise comes from a generator the training
  loop seeds per epoch (:func:`set_sampling`), so runs are reproducible.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .layers import Conv2d, PolyphaseDown, Selection
from .polyphase import polyphase_components, polyphase_norms

__all__ = [
    "LearnedSelection",
    "break_ties",
    "choice_rules",
    "scorer_parameters",
    "scorer_width",
    "set_sampling",
    "temperature_at",
]


def scorer_width(channels: int) -> int:
    """Hidden channels of the scoring network for a map of ``channels`` channels:
    ``max(8, channels // 4)``."""
    return max(8, int(channels) // 4)


def scorer_parameters(channels: int) -> int:
    """Parameters a :class:`LearnedSelection` adds for a map of ``channels`` channels (the
    3x3 conv and its bias, the 1x1 projection and its bias)."""
    h = scorer_width(channels)
    return h * (9 * int(channels) + 1) + h + 1


class LearnedSelection(Selection):
    """LPS: per sample the component of largest learned logit (eval), or the
    Gumbel-softmax weights of the four components (training). See the module docstring.

    Args:
        channels: channels of the map the components come from.
        temperature: the Gumbel-softmax temperature (training only; > 0).
        straight_through: one-hot weights forward, the soft weights' gradient backward.

    ``generator``: a ``torch.Generator`` on the map's device for the Gumbel noise (``None``:
    the global one). ``temperature``, ``straight_through`` and ``generator`` are settings,
    not state: the scorer's weights are the only entries in the state dict.
    """

    adaptive = True
    differentiable = True

    def __init__(self, channels: int, *, temperature: float = 1.0, straight_through: bool = False):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        hidden = scorer_width(channels)
        self.features = Conv2d(channels, hidden, 3, padding=1, padding_mode="circular")
        self.project = nn.Conv2d(hidden, 1, 1)  # its weights; applied in :meth:`score_map`
        self.temperature = _check_temperature(temperature)
        self.straight_through = bool(straight_through)
        self.generator: torch.Generator | None = None

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)``: ``(N, C, h, w) -> (N, h, w)``, float64 (float32 on MPS) from the 1x1
        projection on."""
        acc = torch.float32 if x.device.type == "mps" else torch.float64
        hidden = torch.relu(self.features(x)).to(acc)
        w = self.project.weight.view(1, -1, 1, 1).to(acc)
        bias = self.project.bias
        assert bias is not None  # built with bias=True
        return torch.linalg.vecdot(hidden, w, dim=1) + bias.to(acc)

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, 4)`` logits of the four components of ``z``, float64 (float32 on MPS)."""
        b, c, h, w = z.shape
        f = self.score_map(polyphase_components(z).reshape(b * 4, c, h // 2, w // 2))
        return (f * f).reshape(b, 4, -1).mean(-1)

    def weights(self, logits: torch.Tensor) -> torch.Tensor:
        """Gumbel-softmax weights ``(B, 4)`` of the logits at this temperature (one-hot in
        the forward with ``straight_through``), differentiable in the logits."""
        u = torch.rand(logits.shape, generator=self.generator, device=logits.device, dtype=logits.dtype)
        tiny = torch.finfo(logits.dtype).tiny
        exponential = -torch.log(u.clamp_min(tiny))  # Exp(1); its -log is Gumbel(0, 1)
        gumbel = -torch.log(exponential.clamp_min(tiny))
        noisy = logits + gumbel
        soft = torch.softmax(noisy / self.temperature, dim=1)
        if not self.straight_through:
            return soft
        hard = torch.zeros_like(soft).scatter_(1, noisy.argmax(dim=1, keepdim=True), 1.0)
        return hard + (soft - soft.detach())  # forward: exactly one-hot

    def choose(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.scores(z)
        if self.training:
            return self.weights(logits)
        return break_ties(logits, z)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}, straight_through={self.straight_through}"


def break_ties(logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The evaluation choice ``(B,)``: the component of largest logit; among components whose
    logits are exactly equal to the largest, the one of largest l2 norm (APS's criterion,
    :func:`~apslib.polyphase.polyphase_norms`); then the lowest phase index.

    Exact ties are not rare for a learned score: where the scorer's ReLU is off at every
    pixel of a component, its output is the projection's bias everywhere, and every such
    component scores exactly ``bias**2`` (bit for bit, in any order of summation). A
    lowest-index rule would then pick the grid ``(0, 0)`` for the input and for its shifted
    copy, whose components have moved: the choice would not follow the shift. The norms
    permute with the components like the logits, so the lexicographic rule keeps the
    argument of Proposition 2; where the norms tie too (a constant map) the lowest index
    is what APS does."""
    best = logits.amax(dim=1, keepdim=True)
    tied = logits == best
    if not bool((tied.sum(dim=1) > 1).any()):
        return logits.argmax(dim=1)
    norms = polyphase_norms(z).to(logits.device)
    norms = norms.masked_fill(~tied, float("-inf"))
    return norms.argmax(dim=1)  # among equal norms: the lowest phase index


def _learned_levels(model: nn.Module) -> list[PolyphaseDown]:
    """The down layers of ``model`` whose rule is a :class:`LearnedSelection`, encoder order."""
    return [
        m
        for m in model.modules()
        if isinstance(m, PolyphaseDown) and isinstance(m.selection, LearnedSelection)
    ]


def _check_temperature(t) -> float:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0 < t < float("inf")):
        raise ValueError(f"the Gumbel-softmax temperature must be a positive finite number, got {t!r}")
    return float(t)


def temperature_at(epoch: int, start: float = 1.0, floor: float = 0.1, decay: float = 0.8) -> float:
    """The temperature of epoch ``epoch`` (0-based): ``max(floor, start * decay**epoch)``.
    It depends on the epoch only, so a resumed or extended run continues the same schedule."""
    if int(epoch) < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch!r}")
    return max(float(floor), float(start) * float(decay) ** int(epoch))


def set_sampling(
    model: nn.Module,
    *,
    temperature: float | None = None,
    straight_through: bool | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Set the training-time settings of every :class:`LearnedSelection` of ``model`` (those
    given; ``generator`` is always set, ``None`` meaning the global generator). Returns how
    many there are (0 for a model without LPS levels: nothing to do)."""
    if temperature is not None:
        temperature = _check_temperature(temperature)
    rules = [cast(LearnedSelection, m.selection) for m in _learned_levels(model)]
    for rule in rules:
        if temperature is not None:
            rule.temperature = temperature
        if straight_through is not None:
            rule.straight_through = bool(straight_through)
        rule.generator = generator
    return len(rules)


@torch.no_grad()
def choice_rules(model: nn.Module, x: torch.Tensor, *, level: int = 0, temperatures=(1.0, 0.1)) -> dict:
    """APS's rule and the learned rule side by side on one feature map: the map the learned
    :class:`~apslib.layers.PolyphaseDown` at ``level`` (encoder order) of ``model`` chooses
    a grid of (after its max-pool and blur) for the first image of ``x``, and per rule its four scores (in
    :data:`~apslib.polyphase.PHASES` order): ``"APS: squared l2 norm"`` (APS-D's criterion on
    the same map), ``"LPS: learned score"`` (the logits; evaluation takes their argmax) and
    ``"LPS training, tau=t"`` (the probabilities Gumbel-softmax sampling draws each grid
    with at temperature ``t``). Returns ``{"map": (C, H, W), "scores": {rule: (4,)}}``,
    float64 on the CPU; ``model`` is left in the mode it was in."""
    downs = _learned_levels(model)
    if not 0 <= level < len(downs):
        raise ValueError(f"level {level} is not one of the model's {len(downs)} learned sampling levels")
    seen: list[torch.Tensor] = []
    handle = downs[level].register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0][:1]))
    was_training = model.training
    try:
        model.eval()
        model(x[:1])
    finally:
        handle.remove()
        model.train(was_training)
    z = downs[level].pooled(seen[0])  # what the rule sees: after the max-pool (and blur)
    logits = downs[level].selection.scores(z)[0].double().cpu()
    norms = polyphase_norms(z, "l2")[0].double().cpu()
    scores = {"APS: squared l2 norm": norms, "LPS: learned score": logits}
    for t in temperatures:
        scores[f"LPS training, tau={_check_temperature(t):g}"] = torch.softmax(logits / t, 0)
    return {"map": z[0].double().cpu(), "scores": scores}
