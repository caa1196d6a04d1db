"""How a student's output over the loss window is produced, one optimiser step ("frame") at a time.

The loss needs, for each frame [s, e) of the N-sample loss window, the student's *steady-state*
output plus `history` samples before it for the pre-emphasis filter. A WaveNet has a finite
receptive field R, so the input from R − 1 samples before that is enough: the warm-up beyond it
is never computed. An LSTM's state depends on everything before, so it runs the warm-up without
gradients and then the frames one after another, its state detached between them (truncated
backpropagation through time, as in the DAFx25 reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from aaexp.core.errors import AaexpError


def _detach(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


@dataclass(frozen=True)
class Framing:
    """Frame boundaries and context sizes for one run.

    Attributes:
        n_warmup, n_window: tone layout (samples).
        history: output samples needed before each frame (pre-emphasis filter memory).
        frames: (start, end) pairs tiling [0, n_window), the loss frame of each optimiser step.
        receptive_field: WaveNet R (input samples one output depends on); None for LSTMs.
    """

    n_warmup: int
    n_window: int
    history: int
    frames: tuple[tuple[int, int], ...]
    receptive_field: int | None

    @classmethod
    def build(cls, model, n_warmup: int, n_window: int, history: int, tbptt: int | None) -> "Framing":
        """Frames of about `tbptt` samples (None/0: the whole window) for `model` (an AmpModel)."""
        n_frames = 1 if not tbptt else max(1, round(n_window / int(tbptt)))
        edges = [round(i * n_window / n_frames) for i in range(n_frames + 1)]
        rf = int(model.receptive_field) if model.architecture == "WaveNet" else None
        need = history + (rf - 1 if rf else 0)
        if n_warmup < need:
            raise AaexpError(f"the tones' warm-up ({n_warmup} samples) is shorter than the student needs "
                             f"({need}: receptive field + pre-emphasis); raise trainer.tone_seconds")
        return cls(n_warmup, n_window, history, tuple(zip(edges[:-1], edges[1:])), rf)

    @property
    def whole_window(self) -> bool:
        return len(self.frames) == 1

    @property
    def input_start(self) -> int:
        """First input sample the student reads (WaveNet: only its receptive field before the window)."""
        if self.receptive_field is None:
            return 0
        return self.n_warmup - self.history - (self.receptive_field - 1)

    def target_frames(self, target: Tensor) -> list[Tensor]:
        """Each frame of the target with `history` samples before it, taken circularly (it is periodic).

        Shape: target Tensor[B x N] -> list of Tensor[B x (history + e − s)].
        """
        ext = torch.cat([target[:, target.shape[-1] - self.history:], target], dim=-1) if self.history else target
        return [ext[:, s: e + self.history] for s, e in self.frames]

    def student_frames(self, student, x: Tensor) -> Iterator[Tensor]:
        """The student's output over each frame plus `history` samples before it, in frame order.

        `x` starts at `input_start` in tone time. For LSTMs the generator must be consumed in order
        (the state carries over); the state is detached between frames.

        Shape: x Tensor[B x (n_total − input_start)] -> Tensor[B x (history + e − s)] per frame.
        """
        off = self.input_start
        if self.receptive_field is not None:
            r = self.receptive_field - 1
            for s, e in self.frames:
                a = self.n_warmup + s - self.history - r - off
                yield student(x[:, a: self.n_warmup + e - off])[:, r:]
            return
        # LSTM: warm-up without gradients, keep the last `history` outputs for the first frame.
        with torch.no_grad():
            y_warm, state = student.forward_chunk(x[:, : self.n_warmup], None)
        tail = y_warm[:, y_warm.shape[-1] - self.history:]
        for s, e in self.frames:
            y, state = student.forward_chunk(x[:, self.n_warmup + s: self.n_warmup + e], state)
            state = _detach(state)
            yield torch.cat([tail, y], dim=-1)
            tail = y.detach()[:, y.shape[-1] - self.history:]

    def student_window(self, student, x: Tensor) -> Tensor:
        """The whole window with `history` before it in one piece (validation): Tensor[B x (history + N)]."""
        if self.whole_window:
            return next(iter(self.student_frames(student, x)))
        whole = Framing(self.n_warmup, self.n_window, self.history, ((0, self.n_window),), self.receptive_field)
        return next(iter(whole.student_frames(student, x)))
