"""Two weight layouts of one transformer: the original (fused) one and diffusers' (split) one.

Flux.1's and SD3's original checkpoints (what ComfyUI loads, and what sd-scripts' LoRA names
follow) keep a block's q, k and v as one ``qkv`` layer where diffusers has three (Flux.1's
single blocks fuse the MLP's input in too), and store some modulation layers as (shift,
scale) where diffusers has (scale, shift). A :class:`FusedLayout` is one table of which
diffusers layers each original layer is, in order; every conversion (base weights both
ways, the kohya LoRA file) reads it, so the layouts cannot drift apart.

A fused layer is its parts stacked along the output dimension. The parts' sizes need no
config: every part but the last has the model's width (the fused layer's input size), the
last takes the rest (a Flux.1 single block's MLP is 4x wider). A weight the original lacks
is left out (Flux.1-schnell has no guidance input, SD3's last block no context output
layers, SD3.5 Medium's second attention sits in its first 13 blocks only); a model that
needs it then names it when the weights are loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .ldm_configs import key_indices

ORIGINAL_PREFIX = "model.diffusion_model."  # single files keep the transformer under it
Table = Mapping[str, tuple[str, ...]]  # original module -> the diffusers modules it is, in order


@dataclass(frozen=True)
class BlockKind:
    """One kind of repeated block: its names in both layouts and its tables."""

    diffusers: str  # "transformer_blocks"
    original: str  # "double_blocks"
    linears: Table
    params: Mapping[str, str] = field(default_factory=dict)  # other tensors renamed: original -> diffusers
    # Modules of the last block of this kind whose output halves are swapped (SD3's pre-only context block).
    last_swapped: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FusedLayout:
    """A transformer's original layout and the way to diffusers' and back."""

    blocks: tuple[BlockKind, ...]
    outer_linears: Table  # the linear (and patch-embedding) layers outside the blocks
    outer_params: Mapping[str, str] = field(default_factory=dict)
    outer_swapped: frozenset[str] = frozenset()  # outer modules stored (shift, scale): their halves swapped

    @property
    def _block_name(self) -> re.Pattern[str]:
        kinds = "|".join(re.escape(kind.diffusers) for kind in self.blocks)
        return re.compile(rf"^({kinds})\.(\d+)\.(.+)$")

    def block_kind(self, diffusers: str) -> BlockKind:
        """The :class:`BlockKind` named ``diffusers`` ("transformer_blocks")."""
        return next(kind for kind in self.blocks if kind.diffusers == diffusers)

    def block_of(self, module: str) -> tuple[str, int, str] | None:
        """(block kind, index, layer) of a diffusers module name, or None outside the blocks."""
        match = self._block_name.match(module)
        return (match[1], int(match[2]), match[3]) if match else None

    def linear_table(self, original_keys: Sequence[str]) -> Iterator[tuple[str, tuple[str, ...], bool]]:
        """(original module, diffusers modules, halves swapped) for every linear layer of a model with these keys."""
        for name, parts in self.outer_linears.items():
            yield name, parts, name in self.outer_swapped
        for kind in self.blocks:
            indices = key_indices(original_keys, kind.original + ".")
            for index in indices:
                for name, parts in kind.linears.items():
                    swapped = index == indices[-1] and name in kind.last_swapped
                    yield (f"{kind.original}.{index}.{name}",
                           tuple(f"{kind.diffusers}.{index}.{part}" for part in parts), swapped)

    def param_table(self, original_keys: Sequence[str]) -> Iterator[tuple[str, str]]:
        """(original tensor, diffusers tensor) of the renamed tensors that are no linear layers' (norms ...)."""
        yield from self.outer_params.items()
        for kind in self.blocks:
            for index in key_indices(original_keys, kind.original + "."):
                for name, target in kind.params.items():
                    yield f"{kind.original}.{index}.{name}", f"{kind.diffusers}.{index}.{target}"

    def original_keys_of(self, diffusers_keys: Sequence[str]) -> list[str]:
        """Block names as the original layout spells them (enough for :meth:`linear_table` to count blocks)."""
        out = list(diffusers_keys)
        for kind in self.blocks:
            out = [re.sub(rf"^{re.escape(kind.diffusers)}\.", kind.original + ".", key) for key in out]
        return out

    def to_diffusers(self, original: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """A diffusers state dict from original-layout weights (fused layers split, swapped halves put back)."""
        original = strip_prefix(original)
        keys = list(original)
        out: dict[str, Tensor] = {}
        for source, parts, swapped in self.linear_table(keys):
            weight = original.get(source + ".weight")
            if weight is None:
                continue  # a layer this model lacks (see the module docstring)
            width = weight.shape[1]
            sizes = [width] * (len(parts) - 1) + [weight.shape[0] - width * (len(parts) - 1)]
            for suffix in ("weight", "bias"):
                tensor = original.get(f"{source}.{suffix}")
                if tensor is not None:
                    tensor = swap_halves(tensor) if swapped else tensor
                    for part, piece in zip(parts, torch.split(tensor, sizes, dim=0)):
                        out[f"{part}.{suffix}"] = piece
        for name, target in self.param_table(keys):
            if name in original:
                out[target] = original[name]
        return out

    def to_original(self, diffusers: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Original-layout weights from a diffusers state dict (split layers fused, halves swapped)."""
        keys = self.original_keys_of(list(diffusers))
        out: dict[str, Tensor] = {}
        for target, parts, swapped in self.linear_table(keys):
            for suffix in ("weight", "bias"):
                pieces = [diffusers.get(f"{part}.{suffix}") for part in parts]
                if all(piece is not None for piece in pieces):
                    fused = torch.cat(pieces, dim=0)
                    out[f"{target}.{suffix}"] = swap_halves(fused) if swapped else fused
        for name, target in self.param_table(keys):
            if target in diffusers:
                out[name] = diffusers[target]
        return out

    def kohya_lora(self, pairs: Mapping[str, tuple[Tensor, Tensor]], transformer: torch.nn.Module, alpha: float,
                   dtype: torch.dtype) -> dict[str, Tensor]:
        """The kohya file's tensors for the LoRAs ``pairs`` (diffusers module -> (down, up)) of ``transformer``'s
        block layers: one module per original layer, ``lora_unet_<original path with _>``, as sd-scripts
        names them.

        The LoRAs of the layers a fused layer splits into become one LoRA of the fused layer: their downs
        stacked, their ups block-diagonal, alpha scaled with the rank, so the fused layer changes exactly
        as the parts did; a part without a LoRA contributes zeros (its sizes come from ``transformer``).
        """
        out: dict[str, Tensor] = {}
        blocks = sorted({block[:2] for module in pairs if (block := self.block_of(module))})
        for kind_name, index in blocks:
            kind = self.block_kind(kind_name)
            last = index == len(getattr(transformer, kind_name)) - 1
            for target, parts in kind.linears.items():
                members = [f"{kind_name}.{index}.{part}" for part in parts]
                if not any(m in pairs for m in members):
                    continue
                down, up = _fuse(members, pairs, transformer)
                if last and target in kind.last_swapped:
                    up = swap_halves(up)  # the original stores this layer's output halves the other way round
                name = f"lora_unet_{kind.original}_{index}_{target.replace('.', '_')}"
                out[f"{name}.lora_down.weight"] = down.to(dtype).contiguous()
                out[f"{name}.lora_up.weight"] = up.to(dtype).contiguous()
                # The fused rank is the parts' ranks summed: alpha grows with it, so alpha/rank stays.
                out[f"{name}.alpha"] = torch.tensor(float(alpha) * len(members), dtype=dtype)
        return out


def _fuse(members: list[str], pairs: Mapping[str, tuple[Tensor, Tensor]], transformer: torch.nn.Module
          ) -> tuple[Tensor, Tensor]:
    """One LoRA for the layers ``members`` side by side: downs stacked, ups block-diagonal (absent parts zero)."""
    rank = next(pairs[m][0].shape[0] for m in members if m in pairs)
    downs, ups = [], []
    for member in members:
        if member in pairs:
            down, up = pairs[member]
        else:
            part = transformer.get_submodule(member)
            down, up = torch.zeros(rank, part.in_features), torch.zeros(part.out_features, rank)
        downs.append(down.float())
        ups.append(up.float())
    return torch.cat(downs, dim=0), torch.block_diag(*ups)


def block_count(keys: Sequence[str], prefix: str) -> int:
    """How many blocks ``prefix`` ("joint_blocks.") numbers in these keys."""
    return len(key_indices(keys, prefix))


def swap_halves(tensor: Tensor) -> Tensor:
    """The tensor's two halves along its first dimension swapped ((shift, scale) <-> (scale, shift))."""
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def strip_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The transformer's weights without the ``model.diffusion_model.`` prefix single files carry."""
    return {k.removeprefix(ORIGINAL_PREFIX): v for k, v in state.items()}
