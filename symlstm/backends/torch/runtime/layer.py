"""Runtime of every generated torch module: the autograd Function over a sequence and the nn.Module.

The template renders this file from the marker below into each module. The constants and functions it
reads (CELL, STATES, BLOCKS, SAME_SIZE, STATE_SIZES, OUTPUT_SIZE, STATE_DICT_NAMES, BIAS_PARAMS, SAVED,
INPUT, param_shapes, _check_sizes, _forward, _backward) are the module's own.
"""

import math

import torch

# Stand-ins for what each generated module defines before this point, so that this file reads (and
# lints) on its own.
CELL = "cell"
STATES: tuple = ()
BLOCKS: dict = {}
SAME_SIZE = False
STATE_SIZES: tuple = ()
OUTPUT_SIZE = "H"
STATE_DICT_NAMES: dict = {}
BIAS_PARAMS: tuple = ()
SAVED: tuple = ()
INPUT = "x"


def param_shapes(input_size, hidden_size, **sizes): ...
def _check_sizes(input_size, hidden_size, **sizes): ...
def _forward(params, xs, state0, past): ...
def _backward(params, xs, saved, dy, dstate, past): ...


# -- generated modules include this file from the next line on --


class SequenceFunction(torch.autograd.Function):
    """The cell over a whole sequence, forward and backward the derived ones, one call each.

    `SequenceFunction.apply(past, x, *state0, *params) -> (y, *final states)`: x (T, B, I) time-major,
    each state (B, its size), the parameters as stored (`BLOCKS`), all of one dtype and device; `past` a
    (T, B, 1) bool tensor marking the steps past each sequence's length, or None. Forward keeps only
    the values backward reads (`SAVED`) and records no autograd graph over the steps; backward runs the
    derived backward equations once over the sequence (it is not itself differentiable).
    """

    @staticmethod
    def forward(ctx, past, x, *tensors):
        count = len(STATES)
        state0, params = tensors[:count], dict(zip(BLOCKS, tensors[count:]))
        y, state, saved = _forward(params, x, state0, past)
        ctx.past = past
        ctx.save_for_backward(x, *params.values(), *(saved[v] for v in SAVED if v != INPUT))
        return (y, *state)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, *dstate):
        x, *rest = ctx.saved_tensors
        params = dict(zip(BLOCKS, rest[: len(BLOCKS)]))
        saved = dict(zip([v for v in SAVED if v != INPUT], rest[len(BLOCKS) :]))
        saved[INPUT] = x
        if ctx.past is not None:  # no loss past a sequence's length
            dy = dy.masked_fill(ctx.past, 0)
        dparams, dx, dstate0 = _backward(params, x, saved, dy, dstate, ctx.past)
        return (None, dx, *dstate0, *(dparams[name] for name in BLOCKS))


def _positive(value, name):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{CELL}: {name} must be a positive integer, got {value!r}")
    return value


def _flipped(sequence, order):
    """A (T, B, ...) sequence reversed along time, each batch entry within its length when `order` (the
    (T, B) step each step reads) is given."""
    if order is None:
        return sequence.flip(0)
    return torch.gather(sequence, 0, order[:, :, None].expand_as(sequence))


class Layer(torch.nn.Module):
    """The cell as torch.nn.LSTM/GRU/RNN are used, trained with the derived backward.

    Layer(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, device=None, dtype=None, **sizes) (sizes: the cell's other sizes by keyword,
    proj_size=... for a cell that declares it). forward(input, state=None) -> (output, state_n): input
    (T, B, I), or (B, T, I) with batch_first, or (T, I) unbatched, or a PackedSequence (the output is
    then packed as the input is); state the initial states, each
    (L * D, B, its size) (D = 2 when bidirectional, index layer * D + direction): one tensor for a cell
    with one state, else a tuple in the order of STATES (h, c for the LSTM family), zeros when None;
    state_n the same for the final states. Output (T, B, D * size of y): the last layer's y, the
    directions concatenated. Layer k > 0 reads the previous layer's output (with dropout `dropout`
    applied to it in training mode, as torch.nn does); the reverse direction runs over the flipped
    sequence.

    Parameters are named as in torch.nn (`weight_ih_l0`, `bias_hh_l1_reverse`; `STATE_DICT_NAMES`), so
    a torch.nn.LSTM/GRU/RNN state dict loads into the matching cell's Layer; `bias=False` leaves out
    the stored parameters that are biases only (`BIAS_PARAMS`). Device and dtype are the parameters'.
    """

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
        **sizes,
    ):
        super().__init__()
        self.input_size = _positive(input_size, "input_size")
        self.hidden_size = _positive(hidden_size, "hidden_size")
        self.num_layers = _positive(num_layers, "num_layers")
        self.sizes = sizes
        number = isinstance(dropout, (int, float)) and not isinstance(dropout, bool)
        if not number or not 0 <= dropout <= 1:
            raise ValueError(f"{CELL}: dropout must be a number in [0, 1], got {dropout!r}")
        self.dropout = float(dropout)
        for name, flag in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(flag, bool):
                raise TypeError(f"{CELL}: {name} must be True or False, got {flag!r}")
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        directions = 2 if bidirectional else 1
        if SAME_SIZE and (input_size != hidden_size or (num_layers > 1 and directions == 2)):
            raise ValueError(
                f"{CELL}: the cell needs input size == hidden size at every layer, got input_size "
                f"{input_size}, hidden_size {hidden_size}"
                + (" and a bidirectional stack (layer 1 reads 2 * hidden_size)" if directions == 2 else "")
            )
        self.dims = _check_sizes(input_size, hidden_size, **sizes)  # by label: {"I": .., "H": ..}
        self._names = []  # per (layer, direction): {stored parameter: attribute name}
        for layer in range(num_layers):
            size = input_size if layer == 0 else self.dims[OUTPUT_SIZE] * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                names = {}
                for stored, shape in param_shapes(size, hidden_size, **sizes).items():
                    if stored in BIAS_PARAMS and not bias:
                        continue
                    names[stored] = STATE_DICT_NAMES[stored].removesuffix("_l0") + suffix
                    weight = torch.empty(shape, device=device, dtype=dtype)
                    self.register_parameter(names[stored], torch.nn.Parameter(weight))
                self._names.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        """torch.nn's default: every parameter uniform in (-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            torch.nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}, cell={CELL}"
        text += "".join(f", {name}={value}" for name, value in self.sizes.items())
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.dropout:
            text += f", dropout={self.dropout}"
        for name in ("bias", "batch_first", "bidirectional"):
            if getattr(self, name) != (name == "bias"):
                text += f", {name}={getattr(self, name)}"
        return text

    def forward(self, input, state=None):
        packed = isinstance(input, torch.nn.utils.rnn.PackedSequence)
        if packed:  # a batch of sequences of their own lengths, as torch.nn takes it
            x, lengths = torch.nn.utils.rnn.pad_packed_sequence(input)  # (T, B, I), the caller's order
        elif not isinstance(input, torch.Tensor):
            raise TypeError(
                f"{CELL}: input must be a torch.Tensor or a PackedSequence, got a {type(input).__name__}"
            )
        elif input.dim() not in (2, 3):
            raise ValueError(
                f"{CELL}: input must be 3-D {'(B, T, I)' if self.batch_first else '(T, B, I)'} or 2-D "
                f"(T, I) unbatched, got shape {tuple(input.shape)}"
            )
        else:
            x = input if input.dim() == 3 else input.unsqueeze(1)
            if input.dim() == 3 and self.batch_first:
                x = x.transpose(0, 1)
        batched = packed or input.dim() == 3
        first = next(self.parameters())
        if x.shape[2] != self.input_size:
            raise ValueError(
                f"{CELL}: input size {x.shape[2]} is not this layer's input_size {self.input_size}"
            )
        if x.dtype != first.dtype or x.device != first.device:
            raise TypeError(
                f"{CELL}: input is {x.dtype} on {x.device}, the parameters {first.dtype} on {first.device}"
            )
        # Past its length a sequence is not read, its states stay and its output is 0; the reverse
        # direction runs each sequence backwards from its own last step.
        past = order = None
        if packed:
            steps = torch.arange(x.shape[0])[:, None]
            past = (steps >= lengths[None, :]).to(x.device)[:, :, None]
            order = torch.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps).to(x.device)
        directions = 2 if self.bidirectional else 1
        states = self._initial(state, x, batched, directions)
        finals = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout and self.training:
                x = torch.nn.functional.dropout(x, self.dropout, training=True)
            size = self.input_size if layer == 0 else self.dims[OUTPUT_SIZE] * directions
            shapes = param_shapes(size, self.hidden_size, **self.sizes)
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                names = self._names[index]
                params = [getattr(self, names[s]) if s in names else x.new_zeros(shapes[s]) for s in BLOCKS]
                sequence = x if direction == 0 else _flipped(x, order)
                y, *final = SequenceFunction.apply(
                    past, sequence.contiguous(), *(s[index] for s in states), *params
                )
                outputs.append(y if direction == 0 else _flipped(y, order))
                finals.append(final)
            x = outputs[0] if directions == 1 else torch.cat(outputs, 2)
        state_n = tuple(torch.stack([f[k] for f in finals]) for k in range(len(STATES)))
        if packed:  # the output packed as the input was (its batch sizes and order)
            sorted_x = x.index_select(1, input.sorted_indices) if input.sorted_indices is not None else x
            sorted_lengths = lengths if input.sorted_indices is None else lengths[input.sorted_indices.cpu()]
            data = torch.nn.utils.rnn.pack_padded_sequence(sorted_x, sorted_lengths).data
            x = torch.nn.utils.rnn.PackedSequence(
                data, input.batch_sizes, input.sorted_indices, input.unsorted_indices
            )
        elif not batched:
            x, state_n = x.squeeze(1), tuple(s.squeeze(1) for s in state_n)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, state_n[0] if len(STATES) == 1 else state_n

    def _initial(self, state, x, batched, directions):
        """The initial states as (L * D, B, size) tensors, in the order of STATES."""
        count, B = self.num_layers * directions, x.shape[1]
        sizes = [self.dims[label] for label in STATE_SIZES]
        if state is None:
            return tuple(x.new_zeros((count, B, n)) for n in sizes)
        given = (state,) if isinstance(state, torch.Tensor) and len(STATES) == 1 else state
        what = "a tensor" if len(STATES) == 1 else f"a tuple of {len(STATES)} tensors {STATES}"
        if not isinstance(given, (tuple, list)) or len(given) != len(STATES):
            raise ValueError(f"{CELL}: state must be {what} of shape (L * D, B, H), or None")
        out = []
        for name, s, n in zip(STATES, given, sizes):
            shape = (count, B, n) if batched else (count, n)
            if not isinstance(s, torch.Tensor) or tuple(s.shape) != shape:
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise ValueError(f"{CELL}: state {name} must have shape {shape} (L * D, B, H), got {got}")
            out.append(s if batched else s.unsqueeze(1))
        return tuple(out)
