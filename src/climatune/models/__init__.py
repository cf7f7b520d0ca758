"""Networks: an input stem keyed by variable name, registered backbones, task heads.

Examples
--------
>>> import torch
>>> from climatune.models import build_net, list_backbones
>>> list_backbones()
['resnet', 'unet', 'vartoken_vit', 'vit']
>>> net = build_net("unet", ["tas", "sst"], history=2, n_static=4, n_out=1, width=8, depth=2)
>>> fields = torch.randn(3, 2, 2, 20, 36)  # [batch, variable, history, lat, lon]
>>> net(fields, torch.zeros(4, 20, 36)).shape
torch.Size([3, 1, 20, 36])
"""

from climatune.models.backbones import Backbone, ResNet, UNet, VarTokenViT, ViT
from climatune.models.ensemble import EnsembleNet, dropout_modules, mc_dropout, members_of
from climatune.models.heads import FieldHead, Head, ReadoutHead, ScalarHead
from climatune.models.lora import apply_lora, has_lora, lora_targets, merge_lora
from climatune.models.net import SPEC_VERSION, ClimateNet, build_net
from climatune.models.registry import (
    backbone_class,
    create_backbone,
    create_head,
    head_class,
    list_backbones,
    list_heads,
    options,
    register_backbone,
    register_head,
)
from climatune.models.stem import VariableStem
from climatune.models.token_stem import VariableTokenStem

__all__ = [
    "Backbone",
    "ClimateNet",
    "EnsembleNet",
    "FieldHead",
    "Head",
    "ReadoutHead",
    "ResNet",
    "SPEC_VERSION",
    "ScalarHead",
    "UNet",
    "VarTokenViT",
    "VariableStem",
    "VariableTokenStem",
    "ViT",
    "apply_lora",
    "backbone_class",
    "build_net",
    "create_backbone",
    "create_head",
    "dropout_modules",
    "has_lora",
    "head_class",
    "list_backbones",
    "list_heads",
    "lora_targets",
    "mc_dropout",
    "members_of",
    "merge_lora",
    "options",
    "register_backbone",
    "register_head",
]
